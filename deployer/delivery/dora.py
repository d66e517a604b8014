"""Delivery metrics (DORA and friends) for a team, a service or everyone, over a date range.

Only production environments count (catalog `production: true`), and a
deploy counts for the team owning its service. Figures are computed from the
deploy rows and the commits each deploy shipped (DeployCommit, written by the
worker when the deploy ends), in a fixed number of queries whatever the range.

- deploy frequency: production deploys that went live, per day and per week,
  and by weekday and hour (rollbacks are not deliveries and are left out);
- lead time for changes: commit time → the production deploy that shipped it
  went live (median, p90);
- change failure rate: production deploys that failed, were rolled back,
  failed their API tests, or were followed by a rollback, over all that ran;
- time to restore: a failed production deploy → the next good one there;
- deploy duration (started → finished) and queue wait (queued → started).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from deployer.choices import DeployStatus, DeployTrigger
from deployer.models import Deploy, DeployCommit

BAD = frozenset({DeployStatus.FAILED, DeployStatus.ROLLED_BACK, DeployStatus.TESTS_FAILED})
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class Scope:
    since: date
    until: date  # inclusive
    team: str = ""
    service: str = ""

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1


@dataclass(frozen=True)
class Spread:
    """Median and 90th percentile of some seconds, and how many there were."""

    count: int
    median: float | None
    p90: float | None

    @staticmethod
    def of(values: list[float]) -> Spread:
        if not values:
            return Spread(0, None, None)
        ordered = sorted(values)
        rank = max(0, -(-len(ordered) * 9 // 10) - 1)  # nearest-rank p90
        return Spread(len(ordered), statistics.median(ordered), ordered[rank])


@dataclass
class Figures:
    scope: Scope
    per_day: list[tuple[date, int]] = field(default_factory=list)
    per_week: list[tuple[date, int]] = field(default_factory=list)  # (Monday, deploys)
    by_weekday: list[tuple[str, int]] = field(default_factory=list)
    by_hour: list[tuple[int, int]] = field(default_factory=list)
    deliveries: int = 0
    ran: int = 0  # production deploys that ran to an end (the failure rate's denominator)
    failed: int = 0
    lead_time: Spread = Spread(0, None, None)
    time_to_restore: Spread = Spread(0, None, None)
    duration: Spread = Spread(0, None, None)
    queue_wait: Spread = Spread(0, None, None)

    @property
    def change_failure_rate(self) -> float | None:
        return self.failed / self.ran if self.ran else None

    @property
    def per_day_average(self) -> float:
        return self.deliveries / self.scope.days


def production_deploys(scope: Scope) -> QuerySet[Deploy]:
    start, end = _bounds(scope)
    deploys = Deploy.objects.filter(environment__production=True, created_at__gte=start, created_at__lt=end)
    if scope.team:
        deploys = deploys.filter(environment__service__team__name=scope.team)
    if scope.service:
        deploys = deploys.filter(environment__service__name=scope.service)
    return deploys


def figures(scope: Scope) -> Figures:
    result = Figures(scope)
    rows = list(
        production_deploys(scope)
        .filter(status__in=DeployStatus.finished())
        .exclude(trigger=DeployTrigger.JOIN)  # new hosts getting what ran there: no change, no delivery
        .values("pk", "environment_id", "status", "trigger", "created_at", "enqueued_at", "started_at", "finished_at")
        .order_by("pk")
    )
    delivered = [r for r in rows if r["status"] in DeployStatus.live() and r["trigger"] != DeployTrigger.ROLLBACK]
    result.deliveries = len(delivered)
    _frequency(result, [timezone.localtime(r["finished_at"]) for r in delivered])
    _failures(result, rows)
    result.lead_time = _lead_time(delivered)
    result.duration = Spread.of(
        [(r["finished_at"] - r["started_at"]).total_seconds() for r in rows if r["started_at"] and r["finished_at"]]
    )
    result.queue_wait = Spread.of(
        [(r["started_at"] - r["enqueued_at"]).total_seconds() for r in rows if r["started_at"] and r["enqueued_at"]]
    )
    return result


def _bounds(scope: Scope) -> tuple[datetime, datetime]:
    zone = timezone.get_current_timezone()
    start = datetime.combine(scope.since, datetime.min.time(), tzinfo=zone)
    end = datetime.combine(scope.until + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    return start, end


def _frequency(result: Figures, moments: list[datetime]) -> None:
    days = Counter(moment.date() for moment in moments)
    weeks = Counter(moment.date() - timedelta(days=moment.weekday()) for moment in moments)
    weekdays = Counter(moment.weekday() for moment in moments)
    hours = Counter(moment.hour for moment in moments)
    scope = result.scope
    result.per_day = [(day, days[day]) for day in (scope.since + timedelta(n) for n in range(scope.days))]
    first_monday = scope.since - timedelta(days=scope.since.weekday())
    result.per_week = [
        (monday, weeks[monday])
        for monday in (first_monday + timedelta(weeks=n) for n in range((scope.until - first_monday).days // 7 + 1))
    ]
    result.by_weekday = [(name, weekdays[index]) for index, name in enumerate(WEEKDAYS)]
    result.by_hour = [(hour, hours[hour]) for hour in range(24)]


def _failures(result: Figures, rows: Sequence[Mapping[str, Any]]) -> None:
    """Failure rate and time to restore, per environment in order of the deploys."""
    by_environment: dict[int, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row["status"] != DeployStatus.CANCELLED:
            by_environment.setdefault(row["environment_id"], []).append(row)
    restores = []
    for deploys in by_environment.values():
        for index, row in enumerate(deploys):
            if row["trigger"] == DeployTrigger.ROLLBACK:
                continue  # a rollback is the repair, not a change
            result.ran += 1
            later = deploys[index + 1 :]
            followed_by_rollback = bool(later) and later[0]["trigger"] == DeployTrigger.ROLLBACK
            if row["status"] in BAD or followed_by_rollback:
                result.failed += 1
                good = next((d for d in later if d["status"] == DeployStatus.SUCCEEDED), None)
                if good is not None:
                    restores.append((good["finished_at"] - row["finished_at"]).total_seconds())
    result.time_to_restore = Spread.of(restores)


def _lead_time(delivered: Sequence[Mapping[str, Any]]) -> Spread:
    finished = {row["pk"]: row["finished_at"] for row in delivered}
    commits = DeployCommit.objects.filter(deploy_id__in=list(finished)).values_list("deploy_id", "committed_at")
    return Spread.of([(finished[deploy_id] - at).total_seconds() for deploy_id, at in commits])
