"""Generation counters in the shared cache: a writer bumps one when the data it names changes; a reader
puts the current generation in its cache keys, so stale entries stop being used at once.

With Redis as the cache that is at once for every process; with the embedded (per-process) cache, a
reader's entries still expire after their own timeout. A cache outage never fails the write that bumps.
"""

from __future__ import annotations

import contextlib

from django.core.cache import cache

# What the services matrix shows: deploys and their states, locks, leases, builds, drift, the catalog.
SERVICES = "services"


def _key(name: str) -> str:
    return f"gantry:generation:{name}"


def current(name: str) -> int:
    return int(cache.get(_key(name)) or 0)


def bump(name: str) -> None:
    with contextlib.suppress(Exception):  # the entries' timeout covers a cache that is down
        try:
            cache.incr(_key(name))
        except ValueError:  # not set yet
            cache.set(_key(name), 1, timeout=None)
