"""Opening one SSH connection the way Gantry does (ssh.py and ssh_gateways.py build on it): Gantry's own key,
no agent, no ~/.ssh, and only the host keys the caller trusts; an unknown or changed key, a refused key, or
nothing answering each raise their own error saying what to do."""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from dataclasses import dataclass

import paramiko
from django.conf import settings
from fabric import Config, Connection

from deployer.errors import StepFailed
from deployer.integrations.ssh_keys import HostKey, fingerprint, identity


@dataclass(frozen=True)
class Target:
    address: str
    port: int
    user: str
    via: tuple[Target, ...] = ()  # the jump hosts, in order (the first is reached directly)

    def __str__(self) -> str:
        return f"{self.user}@{self.address}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"


class HostKeyError(StepFailed):
    """The host's key is unknown or differs from the one Gantry trusts; `offered` is the key it showed (under
    `name`, as known_hosts names the host), for a person to check and trust."""

    def __init__(self, message: str, *, name: str, offered: HostKey) -> None:
        super().__init__(message)
        self.name, self.offered = name, offered


class Unreachable(StepFailed):
    """Nothing answers at the host's address and port (connection refused, timed out, no route)."""


class _RefuseUnknownKey(paramiko.MissingHostKeyPolicy):
    """Refuse hosts whose key Gantry does not know, saying how to trust them."""

    def __init__(self, target: Target) -> None:
        self.target = target

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise HostKeyError(
            f"{self.target.address}:{self.target.port} offered host key {fingerprint(key)} ({key.get_name()}), "
            f"which Gantry does not trust. If you expect this host and fingerprint, trust it on its service's "
            f"page (host keys) or with: manage.py trust_host {self.target.address}:{self.target.port} "
            f"--fingerprint {fingerprint(key)}",
            name=self.target.known_hosts_name,
            offered=HostKey.of(key),
        )


def connection_new(target: Target, trusted: Sequence[HostKey], kind: type[Connection], sock: object) -> Connection:
    """A Fabric connection (not open yet) that accepts only `trusted` keys and Gantry's own identity."""
    connect_kwargs: dict[str, object] = {
        "pkey": identity(),
        "look_for_keys": False,
        "allow_agent": False,
        "banner_timeout": settings.SSH_CONNECT_TIMEOUT,
        "auth_timeout": settings.SSH_CONNECT_TIMEOUT,
    }
    if sock is not None:
        connect_kwargs["sock"] = sock
    conn = kind(
        host=target.address,
        port=target.port,
        user=target.user,
        connect_timeout=settings.SSH_CONNECT_TIMEOUT,
        config=Config(overrides={"load_ssh_configs": False}),
        connect_kwargs=connect_kwargs,
    )
    known = conn.client.get_host_keys()
    for key in trusted:
        try:
            known.add(target.known_hosts_name, key.key_type, key.pkey())
        except (ValueError, TypeError, binascii.Error, paramiko.SSHException):
            continue  # a key paramiko cannot read is one it could never match
    conn.client.set_missing_host_key_policy(_RefuseUnknownKey(target))
    return conn


def connection_open(conn: Connection, target: Target) -> None:
    try:
        conn.open()
    except paramiko.BadHostKeyException as exc:
        raise HostKeyError(
            f"the host key of {target.address}:{target.port} CHANGED: it offered {fingerprint(exc.key)}, "
            f"Gantry trusts {fingerprint(exc.expected_key)}. This is what a man-in-the-middle looks like; if the "
            f"host was rebuilt, check the new fingerprint with its owner, then trust it on its service's page "
            f"(host keys) or run: manage.py trust_host {target.address}:{target.port} --replace --fingerprint "
            f"{fingerprint(exc.key)}",
            name=target.known_hosts_name,
            offered=HostKey.of(exc.key),
        ) from exc
    except paramiko.AuthenticationException as exc:
        raise StepFailed(
            f"{target} refused Gantry's SSH key: add the public key (manage.py ssh_key prints it) "
            f"to ~{target.user}/.ssh/authorized_keys on {target.address}"
        ) from exc
    except OSError as exc:  # refused, timed out, no route: nothing answers there
        raise Unreachable(f"cannot connect to {target}: {exc}") from exc
    except paramiko.SSHException as exc:
        raise StepFailed(f"cannot connect to {target}: {exc}") from exc
