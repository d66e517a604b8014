"""How long a deploy will likely take: the p90 of the environment's recent successful deploys."""

from __future__ import annotations

import statistics

from deployer.choices import DeployStatus
from deployer.models import Deploy, Environment

ETA_SAMPLE = 20


def eta_seconds(environment: Environment) -> tuple[int | None, int]:
    """The p90 duration of the environment's last succeeded deploys, and how many there were."""
    rows = (
        Deploy.objects.filter(environment=environment, status=DeployStatus.SUCCEEDED, started_at__isnull=False)
        .order_by("-id")
        .values_list("started_at", "finished_at")[:ETA_SAMPLE]
    )
    durations = [(finished - started).total_seconds() for started, finished in rows if started and finished]
    if not durations:
        return None, 0
    if len(durations) == 1:
        return round(durations[0]), 1
    return round(statistics.quantiles(durations, n=10, method="inclusive")[-1]), len(durations)
