"""How long ago something was, in the short words pages, Slack and errors use."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """'12 s ago', '3 min ago', '2 h ago', '4 days ago'; 'never' for no time."""
    if not isinstance(value, datetime):
        return "never"
    seconds = max(int(((now or timezone.now()) - value).total_seconds()), 0)
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"
