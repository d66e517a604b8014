"""How many hosts switch at once: the environment's batch size, as a count or a percentage."""

from __future__ import annotations

import math


def batch_sizes(hosts: int, batch_size: str) -> list[int]:
    """Sizes of the batches for `hosts` hosts: "2" → 2 at a time, "25%" → a quarter (at least one)."""
    text = batch_size.strip()
    per_batch = math.ceil(hosts * int(text[:-1]) / 100) if text.endswith("%") else int(text)
    per_batch = max(1, min(per_batch, hosts))
    return [min(per_batch, hosts - start) for start in range(0, hosts, per_batch)]


def canary_hosts(hosts: int, canary: str | int) -> int:
    """How many of `hosts` the canary is ("2" hosts, or "10%" of them, at least one), leaving at least one for
    the baseline when there are two or more."""
    text = str(canary).strip()
    wanted = math.ceil(hosts * int(text[:-1]) / 100) if text.endswith("%") else int(text)
    return max(1, min(wanted, hosts - 1)) if hosts > 1 else hosts


def canary_first(hosts: int, canary: str | int, batch_size: str) -> list[int]:
    """The canary's batch first (see canary_hosts), then the rest in the environment's batches."""
    first = canary_hosts(hosts, canary)
    return [first, *batch_sizes(hosts - first, batch_size)] if hosts > first else [first]
