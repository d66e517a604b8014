"""A short-lived cache for the services matrix, the one page whose cost grows with the catalog.

Writers that change what the matrix shows (a deploy requested or changing
state, builds, drift, the catalog) bump a generation number; readers put the
generation in the cache key. With Redis as the cache that invalidates at once
for every process; with the embedded (per-process) cache, entries still
expire after GANTRY_MATRIX_CACHE_SECONDS.
"""

from __future__ import annotations

import contextlib
import hashlib

from django.conf import settings
from django.core.cache import cache

GENERATION_KEY = "gantry:matrix:generation"


def matrix_generation() -> int:
    return int(cache.get(GENERATION_KEY) or 0)


def matrix_changed() -> None:
    # A cache outage must never fail the write that called this; the TTL covers it.
    with contextlib.suppress(Exception):
        try:
            cache.incr(GENERATION_KEY)
        except ValueError:  # not set yet
            cache.set(GENERATION_KEY, 1, timeout=None)


def matrix_key(team: str, query: str) -> str:
    digest = hashlib.sha256(f"{team}\0{query}".encode()).hexdigest()[:16]
    return f"gantry:matrix:{matrix_generation()}:{digest}"


def enabled() -> bool:
    return settings.MATRIX_CACHE_SECONDS > 0
