"""Times as the catalog writes them: durations like "4h" and datetimes that may lack an offset."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

# One optional space between parts, never a run of them: no backtracking over long input.
DURATION_RE = re.compile(r"^(?:(\d{1,3})d)? ?(?:(\d{1,4})h)? ?(?:(\d{1,5})m)?$")


def duration_parse(value: str) -> timedelta:
    """ "4h", "30m", "1d 2h" as a timedelta; ValueError saying the form otherwise."""
    found = DURATION_RE.match(value.strip()) if len(value) <= 20 else None
    if not found or not any(found.groups()):
        raise ValueError(f"{value[:40]!r} is not a duration: write it like 30m, 4h or 1d 12h")
    days, hours, minutes = (int(part or 0) for part in found.groups())
    return timedelta(days=days, hours=hours, minutes=minutes)


def aware(moment: datetime, timezone: str) -> datetime:
    """`moment` as written in the catalog: without an offset, it is in the time zone named beside it."""
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(timezone))
