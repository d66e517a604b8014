"""Template helpers for Gantry's pages."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

from django import template
from django.conf import settings
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from deployer.lib import humanize
from deployer.lib.ansi import ansi_pieces
from deployer.sources import integration_health

register = template.Library()


@register.filter
def ago(value: datetime | None) -> str:
    """'12 s ago', '3 min ago', '2 h ago', '4 days ago'; 'never' for no time (None, or a missing value)."""
    return age(value, timezone.now())


@register.filter
def when(value: datetime | None) -> str:
    """`ago` as a <time> the page keeps current (static/js/gantry.js), its absolute time on hover in the
    viewer's time zone (UTC until the script runs)."""
    if not isinstance(value, datetime):
        return "never"
    return format_html(
        '<time datetime="{}" data-ago title="{}">{}</time>', value.isoformat(), _utc(value), humanize.ago(value)
    )


@register.filter
def at(value: datetime | None, shape: str = "datetime") -> str:
    """An absolute time (shape: datetime, date or time) shown in the viewer's time zone by the page's script;
    UTC, and saying so, until it runs."""
    if not isinstance(value, datetime):
        return ""
    text = {"date": "%Y-%m-%d", "time": "%H:%M:%S"}.get(shape, "%Y-%m-%d %H:%M:%S")
    shown = value.astimezone(UTC).strftime(text) + ("" if shape == "date" else " UTC")
    return format_html(
        '<time datetime="{}" data-at="{}" title="{}">{}</time>', value.isoformat(), shape, _utc(value), shown
    )


@register.filter
def ansi(text: str) -> str:
    """A log message with its ANSI colours as spans (deployer/lib/ansi.py), everything escaped."""
    return format_html_join(
        "",
        "{}",
        (
            (format_html('<span class="{}">{}</span>', p.classes, p.text) if p.classes else p.text,)
            for p in ansi_pieces(text)
        ),
    )


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


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
