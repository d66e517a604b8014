"""Bastions (the catalog's proxy_jump): a host behind jump hosts is reached over a direct-tcpip channel of one
connection per chain of hops and worker process, shared by every host behind it. Each hop's key is checked
like any host's when the connection opens, and again against the keys trusted now whenever it is reused (a
revoked key stops being used); keepalives notice a half-dead link, and a connection that fails is opened
again next time."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace

import paramiko
from django.conf import settings
from fabric import Connection

from deployer.integrations.ssh_connect import Target, Unreachable, connection_new, connection_open
from deployer.integrations.ssh_keys import HostKey

_gateways: dict[tuple[str, ...], Connection] = {}
GATEWAY_KEEPALIVE = 15  # seconds between keepalives on a bastion connection
_gateways_lock = threading.RLock()  # (re-entered: a second hop opens through the first)


def through(target: Target, hop_keys: Mapping[str, Sequence[HostKey]]) -> paramiko.Channel:
    """A channel to `target` through its hops (bounded by the connect timeout: paramiko's default is an hour)."""
    last = target.via[-1]
    gateway = _gateway(target.via, hop_keys)
    try:
        return gateway.client.get_transport().open_channel(
            "direct-tcpip", (target.address, target.port), ("", 0), timeout=settings.SSH_CONNECT_TIMEOUT
        )
    except paramiko.ChannelException as exc:  # the bastion answered: it could not connect there
        raise Unreachable(f"cannot connect to {target} through {last.address}:{last.port}: {exc}") from exc
    except (paramiko.SSHException, OSError, EOFError) as exc:  # the bastion's connection itself: open it again
        _gateway_drop(target.via)
        raise Unreachable(f"cannot connect to {target} through {last.address}:{last.port}: {exc}") from exc


def _gateway(hops: tuple[Target, ...], hop_keys: Mapping[str, Sequence[HostKey]]) -> Connection:
    """The open connection to the last of `hops` (through the ones before it), shared in this process."""
    chain = tuple(str(hop) for hop in hops)
    with _gateways_lock:  # one opening at a time: hosts behind one bastion share its connection
        gateway = _gateways.get(chain)
        hop = hops[-1]
        if (
            gateway is not None
            and gateway.is_connected
            and _still_trusted(gateway, hop_keys.get(hop.known_hosts_name, ()))
        ):
            return gateway
        if gateway is not None:  # gone, or its key is no longer one Gantry trusts: open it again (and check)
            gateway.close()
        sock = through(replace(hop, via=hops[:-1]), hop_keys) if len(hops) > 1 else None
        gateway = connection_new(hop, hop_keys.get(hop.known_hosts_name, ()), Connection, sock)
        try:
            connection_open(gateway, hop)
        except BaseException:
            gateway.close()
            raise
        gateway.client.get_transport().set_keepalive(GATEWAY_KEEPALIVE)  # a half-dead bastion link is noticed
        _gateways[chain] = gateway
        return gateway


def _still_trusted(gateway: Connection, trusted: Sequence[HostKey]) -> bool:
    """The open bastion connection's key is still among the keys trusted now (a revoked key stops being used)."""
    offered = gateway.client.get_transport().get_remote_server_key()
    return any(key.key_type == offered.get_name() and key.base64 == offered.get_base64() for key in trusted)


def _gateway_drop(hops: tuple[Target, ...]) -> None:
    with _gateways_lock:
        gateway = _gateways.pop(tuple(str(hop) for hop in hops), None)
    if gateway is not None:
        gateway.close()
