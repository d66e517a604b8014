"""Spreading the periodic GitHub resync so it stays under GitHub's secondary rate limit.

GitHub counts a REST GET as one point of a secondary limit of 900 points a minute,
whatever the primary budget left (docs.github.com, "Rate limits for the REST API").
A resync of an unchanged repository costs one conditional request (a 304, free for
the primary budget, not for the secondary one), so 5,000 repositories every minute
would be 5,000 points. Each round therefore syncs at most what
GANTRY_GITHUB_SYNC_REQUESTS_PER_MINUTE allows over its interval, the repositories
checked longest ago first, spaced evenly (a countdown per task); webhooks keep the
others prompt. Repositories not on GitHub (a path or a git URL) are not paced.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F, OuterRef, QuerySet, Subquery

from deployer.choices import SyncSource
from deployer.models import Service, SyncState


@dataclass(frozen=True)
class Round:
    """One round of the resync: services synced now, and GitHub services with the seconds to wait before each."""

    unpaced: list[int]
    paced: list[tuple[int, float]]


def resync_round(*, every_seconds: float, per_minute: int, services: QuerySet[Service] | None = None) -> Round:
    """What this round of the branch resync does: the GitHub services that fit in the budget of its interval,
    longest unchecked first, each a steady 60/per_minute seconds after the one before."""
    services = Service.objects.all() if services is None else services
    unpaced = list(services.filter(github_repo="").order_by("pk").values_list("pk", flat=True))
    budget = max(1, int(per_minute * every_seconds / 60))
    attempted = SyncState.objects.filter(service=OuterRef("pk"), source=SyncSource.BRANCHES).values("attempted_at")
    oldest_first = (
        services.exclude(github_repo="")
        .annotate(attempted=Subquery(attempted[:1]))
        .order_by(F("attempted").asc(nulls_first=True), "pk")
    )
    spacing = 60 / per_minute
    paced = [(pk, index * spacing) for index, pk in enumerate(oldest_first.values_list("pk", flat=True)[:budget])]
    return Round(unpaced, paced)


def peak_per_minute(starts: list[float], requests_each: float = 1.0) -> float:
    """The most requests in any 60-second window, for syncs starting at `starts` (seconds) that cost
    `requests_each` requests each (bench/scale.py prints it)."""
    ordered = sorted(round(start, 3) for start in starts)  # to the millisecond: sums of float waits drift
    peak, low = 0, 0
    for high, start in enumerate(ordered):
        while ordered[low] <= round(start - 60, 3):
            low += 1
        peak = max(peak, high - low + 1)
    return peak * requests_each
