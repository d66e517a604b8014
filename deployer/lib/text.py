"""What people type, as Gantry keeps it."""

from __future__ import annotations

REASON_MAX = 500  # characters of a reason a person gives: a lock, an unlock, a rejection, a deploy marked failed


def one_line(text: str, limit: int | None = REASON_MAX) -> str:
    """`text` on one line (every run of whitespace one space), cut at `limit` characters (None: not cut)."""
    said = " ".join(text.split())
    return said if limit is None else said[:limit]
