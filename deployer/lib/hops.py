"""Jump hosts as the catalog writes them (`proxy_jump: deploy@bastion.example.com:2222`, OpenSSH's ProxyJump
form): parsed in one place for the catalog's checks and for the rollout's connections."""

from __future__ import annotations

import re

HOP_RE = re.compile(
    r"^(?:(?P<user>[a-z_][a-z0-9_.-]{0,31})@)?(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9a-fA-F:.]{2,45}\])"
    r"(?::(?P<port>[0-9]{1,5}))?$"
)
MAX_HOPS = 3
DEFAULT_USER = "deploy"  # as for hosts


def hop_parse(text: str) -> tuple[str, str, int]:
    """(user, host, port) of "[user@]host[:port]"; ValueError saying the form when it is not one."""
    found = HOP_RE.match(text.strip())
    port = int(found["port"] or 22) if found else 0
    if not found or not 1 <= port <= 65535:
        raise ValueError(
            f"{text[:100]!r} is not a jump host: write user@host or user@host:port (e.g. deploy@bastion.example.com:22)"
        )
    return found["user"] or DEFAULT_USER, found["host"].strip("[]"), port


def hops_normalized(value: str | list[str] | None) -> list[str]:
    """The hops of a proxy_jump value (one string, comma-separated as OpenSSH takes them, or a list), each as
    user@host:port."""
    if value is None:
        return []
    parts = value.split(",") if isinstance(value, str) else value
    hops = []
    for part in parts:
        user, host, port = hop_parse(part)
        shown = f"[{host}]" if ":" in host else host
        hops.append(f"{user}@{shown}:{port}")
    if len(hops) > MAX_HOPS:
        raise ValueError(f"proxy_jump names at most {MAX_HOPS} jump hosts")
    return hops
