"""Freeze windows (the catalog's `freeze:`, catalog/freeze_spec.py): when an environment takes no deploys.

A deploy is refused when a window is open at its start, or when its estimated end crosses the start of the
next one: a fleet half switched and then paused for hours is worse than a deploy that waits. One that
overruns its estimate finishes. The rules (deploys/rules.py) ask here when a deploy is requested and the
worker asks again when it starts (GitLab #336354: a deploy queued before a freeze ran in it); the pages
show the open and the next windows wherever locks are shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import CroniterError, croniter
from django.utils import timezone

from deployer.lib.moments import aware, duration_parse
from deployer.models import Environment

# A deploy with no history is taken to last this long when asked whether it ends before a window.
UNKNOWN_DURATION = timedelta(minutes=10)
# How far ahead the pages look for the next window.
SHOWN_AHEAD = timedelta(days=7)


@dataclass(frozen=True)
class Freeze:
    """One occurrence of a window: [start, end) with its reason."""

    reason: str
    start: datetime
    end: datetime
    zone: str
    recurring: str  # "0 22 * * * for 4h" for a recurring window, "" for a one-off

    def open_at(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    @property
    def summary(self) -> str:
        """e.g. "frozen for nightly batch (0 22 * * * for 4h, Europe/Berlin) from 12-07 22:00 until 12-08 02:00"."""
        return f"frozen for {self.described}"

    @property
    def described(self) -> str:
        """The window without the verb: "nightly batch (0 22 * * * for 4h, Europe/Berlin) from ... until ..."."""
        local = ZoneInfo(self.zone)
        start, end = self.start.astimezone(local), self.end.astimezone(local)
        shape = f" ({self.recurring}, {self.zone})" if self.recurring else f" ({self.zone})"
        return f"{self.reason}{shape} from {start:%Y-%m-%d %H:%M} until {end:%Y-%m-%d %H:%M}"


def _occurrence(window: dict[str, Any], after: datetime) -> Freeze | None:
    """The occurrence of `window` open at `after`, else the next one to start after it (None: never again)."""
    zone = window.get("timezone") or "UTC"
    if "cron" not in window:
        start, end = (aware(datetime.fromisoformat(window[key]), zone) for key in ("from", "until"))
        return Freeze(window["reason"], start, end, zone, "") if end > after else None
    length = duration_parse(window["duration"])
    shape = f"{window['cron']} for {window['duration']}"
    local = after.astimezone(ZoneInfo(zone))
    # The latest start at or before `after` covers it if any does: every occurrence lasts as long. Lengths are
    # added in UTC ("4h" across a clock change is four hours). croniter's get_prev misreads the repeated hour
    # of an autumn clock change, so the first start after `after - length` is asked as well.
    earliest = (after - length).astimezone(ZoneInfo(zone))
    for start in (
        croniter(window["cron"], local + timedelta(seconds=1)).get_prev(datetime).astimezone(UTC),
        croniter(window["cron"], earliest).get_next(datetime).astimezone(UTC),
    ):
        if start <= after < start + length:
            return Freeze(window["reason"], start, start + length, zone, shape)
    start = croniter(window["cron"], local).get_next(datetime).astimezone(UTC)
    return Freeze(window["reason"], start, start + length, zone, shape)


def _unreadable(window: Any, after: datetime, error: Exception) -> Freeze:
    """A window Gantry cannot read (edited by hand, or from an older release) holds as if open for a day:
    a freeze must never be lost to a typo; the pages and the refusal say what to fix."""
    reason = window.get("reason", "?") if isinstance(window, dict) else "?"
    said = f"a window that cannot be read ({reason!s:.60}: {error.__class__.__name__}); fix it in the catalog"
    return Freeze(said, after - timedelta(seconds=1), after + timedelta(days=1), "UTC", "")


def freezes_ahead(
    environment: Environment, *, now: datetime | None = None, ahead: timedelta = SHOWN_AHEAD
) -> list[Freeze]:
    """The windows open now or starting within `ahead`, soonest first."""
    return windows_ahead(environment.freeze or [], now=now, ahead=ahead)


def windows_ahead(windows: list[dict[str, Any]], *, now: datetime | None = None, ahead: timedelta) -> list[Freeze]:
    """`freezes_ahead` for an environment's `freeze` value (the services matrix reads only that column)."""
    now = now or timezone.now()
    found = []
    for window in windows:
        try:
            found.append(_occurrence(window, now))
        except (KeyError, TypeError, ValueError, OverflowError, CroniterError) as exc:
            found.append(_unreadable(window, now, exc))
    return sorted((f for f in found if f is not None and f.start < now + ahead), key=lambda f: f.start)


def freeze_now(windows: list[dict[str, Any]], *, now: datetime | None = None) -> str:
    """The summary of the window of an environment's `freeze` open now, or "" (shown wherever a lock is)."""
    return next((f.summary for f in windows_ahead(windows, now=now, ahead=timedelta(0))), "") if windows else ""


def freeze_blocking(
    environment: Environment, duration: timedelta | None, *, now: datetime | None = None
) -> Freeze | None:
    """The window a deploy starting now and lasting `duration` (None: unknown) would run into, if any."""
    now = now or timezone.now()
    end = now + (duration if duration is not None else UNKNOWN_DURATION)
    for freeze in freezes_ahead(environment, now=now, ahead=end - now):
        return freeze
    return None


def freeze_refusal(
    freeze: Freeze, duration: timedelta | None, *, where: str = "the environment", now: datetime | None = None
) -> str:
    """Why a deploy may not start now, naming the window and when to come back."""
    now = now or timezone.now()
    local = freeze.end.astimezone(ZoneInfo(freeze.zone))
    after = f"deploy after {local:%Y-%m-%d %H:%M} {freeze.zone}, or an admin deploys anyway with a reason (recorded)"
    if freeze.open_at(now):
        return f"{where} is {freeze.summary}; {after}"
    took = f"about {round(duration.total_seconds() / 60)} min" if duration else "an unknown time (taken as 10 min)"
    minutes = max(1, round((freeze.start - now).total_seconds() / 60))
    return (
        f"a deploy here takes {took}, and a freeze starts in {minutes} min: {freeze.summary}. It would be half "
        f"done when the window opens; {after}"
    )
