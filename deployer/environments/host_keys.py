"""Which hosts Gantry may talk to: the trust store of SSH host keys.

Keys live in the database, so a host trusted on the web machine (or anywhere
`manage.py trust_host` runs) is trusted by every worker at once. Each change is
an audit entry naming who trusted or dropped which key. A known_hosts file is
an import (`trust_host --import`) and an export (`trust_host --export`), never
the source of truth. Nothing is ever trusted without a person saying so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction

from deployer import queue
from deployer.choices import AuditAction
from deployer.environments.access import access_for
from deployer.environments.audit import audit_record
from deployer.errors import DeployRefused, StepFailed
from deployer.integrations import ssh
from deployer.integrations.ssh_config import ssh_config_applied
from deployer.integrations.ssh_keys import HostKey, known_hosts_line, known_hosts_parse
from deployer.lib.hops import hop_parse
from deployer.models import Environment, Host, OfferedHostKey, TrustedHostKey
from deployer.models.access import SYSTEM_USERNAME

# How known_hosts names a host: "10.0.0.5" (port 22) or "[10.0.0.5]:2222".
_NAME_RE = re.compile(r"\[(?P<address>[^\[\]\s]+)\]:(?P<port>[0-9]{1,5})|(?P<bare>[^\[\]\s:]+)", re.ASCII)
OFFERED_KEPT = 5  # the newest keys each host offered that are kept for a person (one that rotates keeps few)


class HostKeyConflict(Exception):
    """Another key is trusted for that host: replacing it is a person's explicit choice."""


def host_target(host: Host) -> ssh.Target:
    """How Gantry reaches `host`: its address, and the jump hosts (the catalog's proxy_jump) in order."""
    via = []
    for hop in host.proxy_jump or []:
        user, address, port = hop_parse(hop)
        via.append(ssh.Target(address, port, user))
    return ssh_config_applied(ssh.Target(host.address, host.port, host.user, via=tuple(via)))


def _shown_target(host: Host) -> ssh.Target:
    """host_target for a page: a GANTRY_SSH_CONFIG the web machine cannot use (it is the workers') falls back to
    the catalog's own values (the deploy says what is wrong with it)."""
    try:
        return host_target(host)
    except StepFailed:
        return ssh.Target(host.address, host.port, host.user)


def hop_keys_of(target: ssh.Target) -> dict[str, list[HostKey]]:
    """The keys Gantry trusts for each of `target`'s jump hosts, by their known_hosts names."""
    return {hop.known_hosts_name: host_keys_of(hop) for hop in target.via}


def host_keys_of(target: ssh.Target) -> list[HostKey]:
    """The keys Gantry trusts for `target` (what `ssh.open_connection` checks the host against)."""
    return _keys_named(target.known_hosts_name)


def _keys_named(name: str) -> list[HostKey]:
    rows = TrustedHostKey.objects.filter(host=name).values_list("key_type", "key", named=True)
    return [HostKey(row.key_type, row.key) for row in rows]


def host_key_trust(*, name: str, key: HostKey, user: User | None, replace: bool = False, by: str = "") -> bool:
    """Trust `key` for the host known as `name` ("addr" or "[addr]:port"); with `replace`, instead of every
    key trusted for it so far. `user`: the Gantry account that trusts it; else `by` names who did (the
    shell account running manage.py), else Gantry itself. Returns False when it was trusted already (nothing
    written); HostKeyConflict when another key of its type is trusted for the host and `replace` was not
    asked for."""
    with transaction.atomic():
        existing = list(TrustedHostKey.objects.select_for_update().filter(host=name))
        if any(row.key == key.base64 and row.key_type == key.key_type for row in existing):
            return False
        same_type = [row for row in existing if row.key_type == key.key_type]
        if same_type and not replace:
            raise HostKeyConflict(
                f"Gantry trusts a different key for {name} ({same_type[0].fingerprint}); if the host was rebuilt, "
                "check the new fingerprint with its owner and replace it (trust_host --replace)"
            )
        dropped = existing if replace else []
        TrustedHostKey.objects.filter(pk__in=[row.pk for row in dropped]).delete()
        OfferedHostKey.objects.filter(host=name, key_type=key.key_type, key=key.base64).delete()
        TrustedHostKey.objects.create(
            host=name,
            key_type=key.key_type,
            key=key.base64,
            fingerprint=key.fingerprint,
            trusted_by=user,
            trusted_by_name=user.get_username() if user is not None else (by or SYSTEM_USERNAME),
        )
        detail = f"{name} {key.key_type} {key.fingerprint}"
        if dropped:
            detail += f", replacing {', '.join(row.fingerprint for row in dropped)}"
        audit_record(AuditAction.HOST_KEY_TRUSTED, actor=user, actor_name=by, detail=detail)
    return True


def host_key_revoke(*, row: TrustedHostKey, user: User | None) -> None:
    """Stop trusting one key (an admin deleting it)."""
    with transaction.atomic():
        TrustedHostKey.objects.filter(pk=row.pk).delete()
        audit_record(AuditAction.HOST_KEY_REVOKED, actor=user, detail=f"{row.host} {row.key_type} {row.fingerprint}")


def known_hosts_import(text: str, *, user: User | None, by: str = "") -> tuple[int, int]:
    """Trust every readable entry of a known_hosts file's text (a key differing from a trusted one of the
    same type is NOT replaced). Returns (added, skipped)."""
    added = skipped = 0
    for name, key in known_hosts_parse(text):
        same_type = [known for known in _keys_named(name) if known.key_type == key.key_type]
        if same_type and key not in same_type:
            skipped += 1  # another key of this type is trusted for the host: a person must choose (--replace)
            continue
        added += host_key_trust(name=name, key=key, user=user, by=by)
    return added, skipped


def host_key_offered(name: str, key: HostKey) -> None:
    """Keep a key a host showed that Gantry does not trust, for a person to check (host_key_retrust)."""
    row, created = OfferedHostKey.objects.get_or_create(
        host=name, key_type=key.key_type, key=key.base64, defaults={"fingerprint": key.fingerprint}
    )
    if not created:
        row.save(update_fields=["last_seen_at"])
        return
    old = OfferedHostKey.objects.filter(host=name).order_by("-last_seen_at").values_list("pk", flat=True)
    OfferedHostKey.objects.filter(pk__in=list(old[OFFERED_KEPT:])).delete()


@dataclass(frozen=True)
class KeyWaiting:
    """A key a host of an environment offered that Gantry does not trust, next to what it trusts instead."""

    name: str  # as known_hosts names the host: what the trust form posts
    offered: str  # the offered key's fingerprint
    trusted: str  # the fingerprints trusted for the host ("" for a host never trusted)
    first_seen_at: datetime


def keys_waiting(environment: Environment) -> list[KeyWaiting]:
    """The keys the environment's hosts offered that Gantry does not trust, newest first."""
    targets = [_shown_target(h) for h in environment.hosts.all()]
    names = {name for t in targets for name in (t.known_hosts_name, *(hop.known_hosts_name for hop in t.via))}
    trusted: dict[str, list[str]] = {}
    for host, fingerprint in TrustedHostKey.objects.filter(host__in=names).values_list("host", "fingerprint"):
        trusted.setdefault(host, []).append(fingerprint)
    return [
        KeyWaiting(row.host, row.fingerprint, ", ".join(trusted.get(row.host, [])), row.first_seen_at)
        for row in OfferedHostKey.objects.filter(host__in=names).order_by("-last_seen_at")[: OFFERED_KEPT * 10]
    ]


def host_key_retrust(*, name: str, fingerprint: str, user: User) -> str:
    """A person trusts the key host `name` offered, naming it by its fingerprint (checked with the host's
    owner), instead of every key trusted for it so far; audited. They must be allowed to deploy to every
    environment with a host of that name. Returns what was done; DeployRefused (or PermissionRefused) says
    why not."""
    access = access_for(user)
    environments = environments_of(name)
    if not environments:
        access.require_admin(f"trust a key of {name}, which no environment has")
    for environment in environments:
        access.require_deploy(environment)
    typed = fingerprint.strip()[:100]
    offered = OfferedHostKey.objects.filter(host=name, fingerprint=typed).first()
    if offered is None:
        raise DeployRefused(
            f"{name} offered no key with the fingerprint {typed!r}; type the fingerprint the host's owner reads to "
            "you (ssh-keygen -lf on its host key), not one copied from a page"
        )
    key = HostKey(offered.key_type, offered.key)
    host_key_trust(name=name, key=key, user=user, replace=True)
    OfferedHostKey.objects.filter(host=name).delete()
    for environment in environments:  # a new host refused for its key joins now, not at the next deploy
        queue.enqueue_after_commit(queue.HOSTS_JOINED, environment.pk)
    return f"{name} is trusted by its key {key.fingerprint} now"


def environments_of(name: str) -> list[Environment]:
    """Every environment with a host, or a builder, that known_hosts calls `name`."""
    match = _NAME_RE.fullmatch(name)
    if match is None:
        return []
    address, port = match.group("bare") or match.group("address"), int(match.group("port") or 22)
    hosts = Host.objects.filter(address=address, port=port)
    as_host = Environment.objects.filter(hosts__in=hosts)
    as_builder = Environment.objects.filter(build_mode="builder", builder_address=address, builder_port=port)
    return list((as_host | as_builder).select_related("service").distinct())


def known_hosts_export() -> str:
    """Every trusted key as a known_hosts file (for OpenSSH, Ansible, or another Gantry)."""
    rows = TrustedHostKey.objects.order_by("host", "key_type").values_list("host", "key_type", "key", named=True)
    return "".join(known_hosts_line(row.host, HostKey(row.key_type, row.key)) + "\n" for row in rows)
