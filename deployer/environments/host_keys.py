"""Which hosts Gantry may talk to: the trust store of SSH host keys.

Keys live in the database, so a host trusted on the web machine (or anywhere
`manage.py trust_host` runs) is trusted by every worker at once. Each change is
an audit entry naming who trusted or dropped which key. A known_hosts file is
an import (`trust_host --import`) and an export (`trust_host --export`), never
the source of truth. Nothing is ever trusted without a person saying so.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction

from deployer.choices import AuditAction
from deployer.environments.audit import audit_record
from deployer.integrations import ssh
from deployer.integrations.ssh_keys import HostKey, known_hosts_line, known_hosts_parse
from deployer.models import TrustedHostKey
from deployer.models.access import SYSTEM_USERNAME


class HostKeyConflict(Exception):
    """Another key is trusted for that host: replacing it is a person's explicit choice."""


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


def known_hosts_export() -> str:
    """Every trusted key as a known_hosts file (for OpenSSH, Ansible, or another Gantry)."""
    rows = TrustedHostKey.objects.order_by("host", "key_type").values_list("host", "key_type", "key", named=True)
    return "".join(known_hosts_line(row.host, HostKey(row.key_type, row.key)) + "\n" for row in rows)
