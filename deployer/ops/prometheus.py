"""Gantry's own figures in Prometheus' format, read from the database at scrape time.

Every number here already lives in a table (deploys, sync states, the outbox),
so a scrape asks the database instead of keeping counters in process memory:
web processes, workers and machines all report the same figures, and a
restart loses nothing. A scrape costs a fixed handful of queries.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum
from django.db.models.expressions import CombinedExpression
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from deployer.choices import DeployStatus
from deployer.models import (
    Deploy,
    GrafanaAnnotation,
    IntegrationStatus,
    Measurement,
    SlackMessage,
    SyncState,
    WebhookDelivery,
)
from deployer.version import VERSION

DURATION_BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0)
WAIT_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
_WHERE = ("environment__service__name", "environment__name")


class GantryCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        yield _build_info()
        yield _deploys_total()
        yield _histogram(
            "gantry_deploy_duration_seconds",
            "How long finished deploys ran (started → finished)",
            F("finished_at") - F("started_at"),
            Q(started_at__isnull=False, finished_at__isnull=False),
            DURATION_BUCKETS,
        )
        yield _histogram(
            "gantry_deploy_queue_wait_seconds",
            "How long deploys waited for a worker (queued → started)",
            F("started_at") - F("enqueued_at"),
            Q(started_at__isnull=False, enqueued_at__isnull=False),
            WAIT_BUCKETS,
        )
        yield from _active_deploys()
        yield _canary_measurements()
        yield from _syncs()
        yield from _outboxes()
        yield _integration_failures()


def _deploys_total() -> CounterMetricFamily:
    family = CounterMetricFamily(
        "gantry_deploys", "Deploys by service, environment and outcome", labels=["service", "environment", "outcome"]
    )
    rows = Deploy.objects.values(*_WHERE, "status").annotate(n=Count("pk")).order_by(*_WHERE, "status")
    for row in rows:
        family.add_metric([row[_WHERE[0]], row[_WHERE[1]], row["status"]], row["n"])
    return family


def _histogram(
    name: str, documentation: str, span: CombinedExpression, present: Q, buckets: tuple[float, ...]
) -> Metric:
    """A histogram per service and environment, counted by the database (one query, whatever the history)."""
    family = HistogramMetricFamily(name, documentation, labels=["service", "environment"])
    seconds = ExpressionWrapper(span, output_field=DurationField())
    per_bucket = {
        f"le_{index}": Count("pk", filter=Q(elapsed__lte=timedelta(seconds=bound)))
        for index, bound in enumerate(buckets)
    }
    rows = (
        Deploy.objects.filter(present)
        .alias(elapsed=seconds)
        .values(*_WHERE)
        .annotate(total=Count("pk"), sum=Sum("elapsed"), **per_bucket)
        .order_by(*_WHERE)
    )
    for row in rows:
        cumulative = [(floatToGoString(bound), row[f"le_{index}"]) for index, bound in enumerate(buckets)]
        total_seconds = row["sum"].total_seconds() if row["sum"] is not None else 0.0
        family.add_metric(
            [row[_WHERE[0]], row[_WHERE[1]]], [*cumulative, ("+Inf", row["total"])], sum_value=total_seconds
        )
    return family


def _build_info() -> GaugeMetricFamily:
    """Which Gantry answers (1), for dashboards that mark upgrades."""
    family = GaugeMetricFamily("gantry_build_info", "The Gantry version that serves these metrics", labels=["version"])
    family.add_metric([VERSION], 1)
    return family


def _active_deploys() -> Iterator[GaugeMetricFamily]:
    """How many deploys are in each active state, and how long the oldest has been there (alerts: a deploy
    stuck running, deploys queued with no worker taking them)."""
    family = GaugeMetricFamily("gantry_deploys_active", "Deploys holding an environment now", labels=["status"])
    oldest = GaugeMetricFamily(
        "gantry_deploy_oldest_active_seconds", "Age of the oldest deploy in each active state", labels=["status"]
    )
    rows = Deploy.objects.active().values("status").annotate(n=Count("pk"), first=Min("created_at")).order_by()
    found = {row["status"]: row for row in rows}
    now = timezone.now()
    for status in sorted(DeployStatus.active()):
        row = found.get(status)
        family.add_metric([status], row["n"] if row else 0)
        oldest.add_metric([status], (now - row["first"]).total_seconds() if row else 0.0)
    yield family
    yield oldest


def _canary_measurements() -> CounterMetricFamily:
    family = CounterMetricFamily(
        "gantry_canary_measurements",
        "Canary analysis measurements, by verdict",
        labels=["service", "environment", "verdict"],
    )
    service, environment = (f"deploy__{where}" for where in _WHERE)
    rows = Measurement.objects.values(service, environment, "verdict").annotate(n=Count("pk")).order_by()
    for row in rows:
        family.add_metric([row[service], row[environment], row["verdict"]], row["n"])
    return family


def _syncs() -> Iterator[Metric]:
    """Per source: services whose last sync failed, and how old the oldest/each service's data is."""
    now = timezone.now()
    failing = GaugeMetricFamily(
        "gantry_sync_failing_services", "Services whose last sync from a source failed", labels=["source"]
    )
    age = GaugeMetricFamily(
        "gantry_sync_age_seconds", "Seconds since a service's last successful sync", labels=["service", "source"]
    )
    for row in SyncState.objects.values("source").annotate(n=Count("pk", filter=~Q(error=""))).order_by("source"):
        failing.add_metric([row["source"]], row["n"])
    for service, source, synced_at in SyncState.objects.values_list("service__name", "source", "synced_at").order_by(
        "service__name", "source"
    ):
        if synced_at is not None:
            age.add_metric([service, source], (now - synced_at).total_seconds())
    yield failing
    yield age


def _outboxes() -> Iterator[Metric]:
    now = timezone.now()
    backlog = GaugeMetricFamily("gantry_outbox_backlog", "Items waiting to be sent or processed", labels=["outbox"])
    oldest = GaugeMetricFamily(
        "gantry_outbox_oldest_seconds", "Age of the oldest waiting item (0: none)", labels=["outbox"]
    )
    slack = SlackMessage.objects.filter(state=SlackMessage.State.PENDING).aggregate(
        n=Count("pk"), first=Min("created_at")
    )
    hooks = WebhookDelivery.objects.filter(processed_at__isnull=True).aggregate(n=Count("pk"), first=Min("received_at"))
    grafana = GrafanaAnnotation.objects.filter(state=GrafanaAnnotation.State.PENDING).aggregate(
        n=Count("pk"), first=Min("created_at")
    )
    for name, row in (("slack", slack), ("webhooks", hooks), ("grafana", grafana)):
        backlog.add_metric([name], row["n"])
        oldest.add_metric([name], (now - row["first"]).total_seconds() if row["first"] else 0.0)
    yield backlog
    yield oldest


def _integration_failures() -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "gantry_integration_consecutive_failures", "Failed calls in a row to an outside system", labels=["integration"]
    )
    for name, failures in IntegrationStatus.objects.values_list("name", "consecutive_failures").order_by("name"):
        family.add_metric([name], failures)
    return family
