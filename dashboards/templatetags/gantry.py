"""Template helpers for Gantry's pages."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from django import template
from django.conf import settings
from django.utils import timezone

from deployer.lib import humanize
from deployer.sources import integration_health

register = template.Library()


@register.filter
def ago(value: datetime | None) -> str:
    """'12 s ago', '3 min ago', '2 h ago', '4 days ago'; 'never' for no time (None, or a missing value)."""
    return age(value, timezone.now())


def age(value: datetime | None, now: datetime) -> str:
    """`ago` with `now` given, for code that prints many ages at once."""
    return humanize.ago(value, now)


@register.simple_tag
def commit_url(repo: str, sha: str) -> str:
    """Link to a commit on GitHub, or '' when the service is not on GitHub."""
    return integration_health.commit_url(repo, sha)


@register.filter
def web_url(value: str) -> str:
    """A link from an outside system (a Jenkins build's URL) as an href: http(s) or nothing
    (a javascript: or data: URL stored before Gantry checked them must not become a link)."""
    return value if urlsplit(str(value)).scheme in {"http", "https"} else ""


@register.simple_tag
def github_url(repo: str) -> str:
    return f"{settings.GITHUB_WEB_URL}/{repo}"


@register.filter
def duration(seconds: float | None) -> str:
    """85 → "1 min 25 s"; 12 → "12 s"; 3 days → "3 d"."""
    if seconds is None:
        return ""
    whole = max(0, round(seconds))
    minutes, rest = divmod(whole, 60)
    if not minutes:
        return f"{rest} s"
    hours, minutes = divmod(minutes, 60)
    if hours >= 48:
        days, hours = divmod(hours, 24)
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"
