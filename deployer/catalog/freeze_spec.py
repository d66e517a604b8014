"""The catalog's `freeze:` key (environments/freezes.py reads it): windows in which nothing is deployed.

A window is one-off (`from`/`until`, e.g. a database move or a launch) or recurring (`cron` + `duration` in a
`timezone`, e.g. a nightly batch). It is an environment key, so `defaults:` (the catalog's or a team's) give
it to many environments; unlike other defaults, a team's windows add to an environment's own rather than
being replaced by them (a freeze must never be dropped by accident), and `environments:` narrows one to
some environments (a team's launch freeze on production only)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterBadDateError, croniter
from pydantic import AfterValidator, Field, model_validator

from deployer.catalog.fields import Name, Spec
from deployer.lib.moments import aware, duration_parse

MAX_DURATION = timedelta(days=31)


def valid_duration(value: str) -> str:
    if not timedelta(minutes=1) <= duration_parse(value) <= MAX_DURATION:
        raise ValueError("a freeze lasts from 1 minute to 31 days")
    return value


# A field: *, a number or a three-letter name (mon, jan), or a range of them, with an optional /step; or a
# list of those. No "R" (croniter's random), no "L" or "#": a window's starts are read the same everywhere.
_ATOM = r"(?:\*|(?:[0-9]{1,2}|[a-zA-Z]{3})(?:-(?:[0-9]{1,2}|[a-zA-Z]{3}))?)(?:/[0-9]{1,2})?"
CRON_FIELD = re.compile(rf"^{_ATOM}(?:,{_ATOM}){{0,30}}$")
# Zone names that depend on how the machine is set up, not on where the window is.
MACHINE_ZONES = frozenset({"localtime", "posixrules", "Factory"})


def valid_cron(value: str) -> str:
    fields = value.split()
    said = (
        f"{value[:60]!r} is not a cron expression of five fields (minute hour day month weekday) of numbers, "
        'ranges, steps and lists, e.g. "0 22 * * *" for 22:00 every day or "0 9 * * 5" for Fridays at 09:00'
    )
    if len(fields) != 5 or not all(CRON_FIELD.match(field) for field in fields) or not croniter.is_valid(value):
        raise ValueError(said)
    try:  # valid, and yet never fires ("0 0 31 2 *": 31 February): croniter gives up looking for the next one
        croniter(value, datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC"))).get_next(datetime)
    except (CroniterBadDateError, ValueError, KeyError):
        raise ValueError(f"{value[:60]!r} never fires (is there such a day?); {said}") from None
    return value


def valid_moment(value: datetime | None) -> datetime | None:
    if value is not None and not 2000 <= value.year <= 2100:
        raise ValueError("a freeze window's dates are between the years 2000 and 2100")
    return value


def valid_timezone(value: str) -> str:
    try:
        if value in MACHINE_ZONES or value.startswith(("posix/", "right/")):
            raise ValueError(value)
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        near = sorted(name for name in available_timezones() if name.lower().endswith(value.lower().split("/")[-1]))
        hint = f"; did you mean {near[0]}?" if near else ", e.g. Europe/Berlin or America/New_York"
        raise ValueError(f"{value[:60]!r} is not an IANA time zone{hint}") from None
    return value


class FreezeSpec(Spec):
    reason: str = Field(min_length=3, max_length=200, description="why, shown wherever the freeze is (e.g. launch)")
    from_: Annotated[datetime | None, AfterValidator(valid_moment)] = Field(
        default=None, alias="from", description="a one-off window's start, e.g. 2026-12-24 00:00 (in timezone)"
    )
    until: Annotated[datetime | None, AfterValidator(valid_moment)] = Field(
        default=None, description="a one-off window's end, e.g. 2026-12-27 08:00"
    )
    cron: Annotated[str, Field(max_length=200), AfterValidator(valid_cron)] | None = Field(
        default=None, description='a recurring window\'s starts, e.g. "0 22 * * *" (22:00 every day)'
    )
    duration: Annotated[str, Field(max_length=20), AfterValidator(valid_duration)] | None = Field(
        default=None, description="how long each recurring window lasts, e.g. 4h"
    )
    timezone: Annotated[str, Field(max_length=60), AfterValidator(valid_timezone)] = Field(
        default="UTC", description="the time zone of cron and of from/until without an offset, e.g. Europe/Berlin"
    )
    environments: list[Name] | None = Field(
        default=None, min_length=1, max_length=50, description="only these environments (for windows in defaults:)"
    )

    @model_validator(mode="after")
    def _one_kind(self) -> FreezeSpec:
        one_off, recurring = self.from_ or self.until, self.cron or self.duration
        if one_off and recurring:
            raise ValueError("a freeze is one-off (from, until) or recurring (cron, duration), not both")
        if recurring and not (self.cron and self.duration):
            raise ValueError('a recurring freeze needs both cron (when it starts) and duration (e.g. "4h")')
        if one_off:
            if not (self.from_ and self.until):
                raise ValueError("a one-off freeze needs both from and until")
            if aware(self.until, self.timezone) <= aware(self.from_, self.timezone):
                raise ValueError("until must come after from")
        if not one_off and not recurring:
            raise ValueError(
                'say when: from and until (a one-off window) or cron and duration (e.g. cron: "0 22 * * *", '
                "duration: 4h)"
            )
        return self
