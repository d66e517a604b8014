"""HAProxy's runtime API: drain a server, count its sessions, make it ready again.

The API takes one command per connection (non-interactive mode) on a Unix
socket or a TCP address (the `stats socket` line of haproxy.cfg, which must be
`level admin`). Every call is bounded by a timeout; errors say what to fix.
"""

from __future__ import annotations

import csv
import io
import socket
from dataclasses import dataclass

TIMEOUT = 5.0


class HAProxyError(Exception):
    """The runtime API could not be reached or refused the command."""


ADMIN_FORCED_DRAIN = 0x08  # srv_admin_state bit set by `set server ... state drain`


@dataclass(frozen=True)
class ServerState:
    name: str
    status: str  # HAProxy's status column: UP, DOWN, DRAIN, MAINT, "UP 1/2"...
    sessions: int  # scur: sessions in progress
    draining: bool  # drained through the runtime API (whatever its health checks say)
    weight: int = 1  # its weight now (a canary's is lowered while it is judged)


def command(address: str, line: str, *, timeout: float = TIMEOUT) -> str:
    """Send one command; return HAProxy's answer (empty for a successful `set`)."""
    if "\n" in line:
        raise ValueError("one command per call")
    try:
        with _connect(address, timeout) as sock:
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError as exc:
        raise HAProxyError(f"HAProxy runtime API at {address} did not answer ({exc}); is haproxy running?") from exc
    return b"".join(chunks).decode(errors="replace")


def _connect(address: str, timeout: float) -> socket.socket:
    if address.startswith("/"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        return sock
    host, _, port = address.rpartition(":")
    return socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)


def server_set_state(address: str, backend: str, server: str, state: str) -> None:
    """state: ready, drain or maint."""
    answer = command(address, f"set server {backend}/{server} state {state}").strip()
    if answer:
        raise HAProxyError(f"HAProxy refused to set {backend}/{server} to {state}: {answer}")


def server_set_weight(address: str, backend: str, server: str, weight: str) -> None:
    """weight: 0 to 256, or a percentage of the weight in haproxy.cfg ("100%": as configured)."""
    answer = command(address, f"set server {backend}/{server} weight {weight}").strip()
    if answer:
        raise HAProxyError(f"HAProxy refused the weight {weight} for {backend}/{server}: {answer}")


def servers(address: str, backend: str) -> dict[str, ServerState]:
    """The servers of `backend` with their status and current sessions."""
    answer = command(address, "show stat")
    if not answer.startswith("# "):
        raise HAProxyError(f"HAProxy answered `show stat` with: {answer.strip()[:200]}")
    rows = csv.DictReader(io.StringIO(answer[2:]))
    stats = {
        row["svname"]: row for row in rows if row["pxname"] == backend and row["svname"] not in {"FRONTEND", "BACKEND"}
    }
    if not stats:
        raise HAProxyError(f"HAProxy has no backend {backend!r} with servers; check the backend name in the catalog")
    drained = _forced_drain(address, backend)
    return {
        name: ServerState(name, row["status"], int(row["scur"] or 0), name in drained, int(row["weight"] or 0))
        for name, row in stats.items()
    }


def _forced_drain(address: str, backend: str) -> set[str]:
    """Servers drained through the API, from `show servers state` (its admin state is a bit field)."""
    names = set()
    lines = command(address, f"show servers state {backend}").splitlines()
    header = next((line[2:].split() for line in lines if line.startswith("# ")), None)
    if header is None:
        raise HAProxyError(f"HAProxy answered `show servers state {backend}` with: {' '.join(lines)[:200]}")
    for line in lines:
        fields = line.split()
        if len(fields) == len(header) and not line.startswith("#"):
            row = dict(zip(header, fields, strict=True))
            if int(row["srv_admin_state"]) & ADMIN_FORCED_DRAIN:
                names.add(row["srv_name"])
    return names
