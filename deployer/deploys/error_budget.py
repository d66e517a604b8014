"""Error budgets: each service's SLO (the catalog's `slo:`, catalog/slo_spec.py) read from Prometheus every
minute, and the gate that stops production deploys while the budget is spent or burning fast.

Remaining budget = 1 - (error ratio over the window) / (1 - objective). Burn rate over a range = the error
ratio over it / (1 - objective). A fast burn is the SRE workbook's page: 1h and 5m both above 14.4 (2 % of
a 30-day budget in an hour); a slow burn its ticket: 6h and 30m both above 6 (5 % in six hours).

The gate reads the stored reading: a deploy never waits on Prometheus. A reading Gantry could not take
(Prometheus down, no data) does not block — it is shown as unknown, with why, beside the last figures:
a gate that closed whenever monitoring is away would stop the fixes most needed then. Rollbacks and
emergency deploys never ask.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from deployer.catalog.slo_spec import SloSpec
from deployer.integrations.prometheus_api import PrometheusError, query
from deployer.models import BudgetReading, Service

logger = logging.getLogger(__name__)

FAST, SLOW = 14.4, 6.0
# Figures older than this are not trusted to block: the scheduler stopped reading (shown as such).
STALE = timedelta(minutes=5)
RANGES = ("5m", "30m", "1h", "6h")


@dataclass(frozen=True)
class Figures:
    remaining: float | None
    burn_rates: dict[str, float | None]

    @property
    def fast(self) -> bool:
        return all((self.burn_rates.get(r) or 0) > FAST for r in ("1h", "5m"))

    @property
    def slow(self) -> bool:
        return all((self.burn_rates.get(r) or 0) > SLOW for r in ("6h", "30m"))


def budgets_read() -> int:
    """Read every service's budget (the scheduler's round); how many services have an SLO."""
    services = list(Service.objects.exclude(slo={}))
    for service in services:
        try:
            budget_read(service)
        except Exception:  # one service's SLO (an odd answer, a bad stored spec) never stops the others'
            logger.exception("error budget of %s not read", service.name)
    return len(services)


def budget_read(service: Service) -> BudgetReading:
    """Ask Prometheus for the service's figures and keep them (or, when it cannot answer, why)."""
    spec = SloSpec.model_validate(service.slo)
    now = timezone.now()
    reading, _ = BudgetReading.objects.get_or_create(service=service, defaults={"checked_at": now})
    try:
        figures = _figures(spec)
    except PrometheusError as exc:
        BudgetReading.objects.filter(pk=reading.pk).update(checked_at=now, error=str(exc)[:500])
        logger.warning("error budget of %s not read: %s", service.name, exc)
    else:
        BudgetReading.objects.filter(pk=reading.pk).update(
            remaining=figures.remaining,
            burn_rates=figures.burn_rates,
            fast_burn=figures.fast,
            slow_burn=figures.slow,
            error="" if figures.remaining is not None else "no data for the SLO's window (is the query right?)",
            read_at=now,
            checked_at=now,
        )
    reading.refresh_from_db()
    return reading


def _figures(spec: SloSpec) -> Figures:
    url = settings.PROMETHEUS_SERVERS.get(spec.prometheus, "")
    if not url:
        raise PrometheusError(f"no Prometheus server {spec.prometheus!r} in GANTRY_PROMETHEUS here")
    at = time.time()
    if spec.sloth:
        labels = f'{{sloth_service="{spec.sloth.service}",sloth_slo="{spec.sloth.slo}"}}'
        budget = _one(url, f"slo:error_budget:ratio{labels}", at)
        remaining = _one(url, f"slo:period_error_budget_remaining:ratio{labels}", at)
        errors = {r: _one(url, f"slo:sli_error:ratio_rate{r}{labels}", at) for r in RANGES}
    else:
        budget = 1 - (spec.objective or 0) / 100
        window = _error_ratio(url, spec, spec.window, at)
        remaining = None if window is None else 1 - window / budget
        errors = {r: _error_ratio(url, spec, r, at) for r in RANGES}
    rates = {r: (None if e is None or not budget else e / budget) for r, e in errors.items()}
    return Figures(remaining, rates)


def _error_ratio(url: str, spec: SloSpec, window: str, at: float) -> float | None:
    good = _one(url, (spec.good or "").replace("{{range}}", window), at)
    total = _one(url, (spec.total or "").replace("{{range}}", window), at)
    if good is None or not total:
        return None  # no events: no ratio (never 0, which would read as a perfect record)
    return max(0.0, 1 - good / total)


def _one(url: str, promql: str, at: float) -> float | None:
    samples = query(url, promql, at=at, timeout=settings.PROMETHEUS_TIMEOUT)
    if len(samples) != 1 or math.isnan(samples[0].value) or math.isinf(samples[0].value):
        return None
    return samples[0].value


def budget_summary(reading: BudgetReading | None) -> str:
    """e.g. "38 % of the 30-day budget left; burn 1h 0.4×, 5m 0.2×" (or why it is unknown)."""
    if reading is None or reading.read_at is None:
        return "not read yet" + (f" ({reading.error})" if reading and reading.error else "")
    left = "budget unknown" if reading.remaining is None else f"{reading.remaining:.0%} of the budget left"
    rates = reading.burn_rates  # (in the ranges' order: PostgreSQL's jsonb keeps keys in its own)
    burns = ", ".join(f"{r} {rates[r]:.1f}×" for r in RANGES if rates.get(r) is not None)
    said = f"{left}; burn rate {burns}" if burns else left
    if reading.fast_burn:
        said += f" — burning fast (1h and 5m above {FAST}×)"
    elif reading.slow_burn:
        said += f" — burning (6h and 30m above {SLOW:.0f}×)"
    if reading.error:
        said += f" (last read {timezone.localtime(reading.read_at):%H:%M}; now: {reading.error})"
    elif reading.read_at < timezone.now() - STALE:
        said += f" (last read {timezone.localtime(reading.read_at):%H:%M}: too old to gate; is the scheduler running?)"
    return said


def budget_blocks(service: Service) -> str:
    """Why the service's budget stops production deploys now ("" when it does not: no gate, or fine)."""
    if not service.slo or not service.slo.get("gate"):
        return ""
    reading = BudgetReading.objects.filter(service=service).first()
    if reading is None or reading.read_at is None or reading.error or reading.read_at < timezone.now() - STALE:
        return ""  # unknown (or stale) never blocks (see above); the plan says so
    if reading.remaining is not None and reading.remaining <= 0:
        return f"{service.name} has spent its error budget: {budget_summary(reading)}"
    if reading.fast_burn or reading.slow_burn:
        return f"{service.name} is burning its error budget: {budget_summary(reading)}"
    return ""


def budget_badges(services: Any) -> dict[int, tuple[str, bool]]:
    """Each service's error budget as the services matrix shows it, (text, bad); one query for any number."""
    found: dict[int, tuple[str, bool]] = {}
    for service_id, remaining, fast, slow, read_at in BudgetReading.objects.filter(service__in=services).values_list(
        "service_id", "remaining", "fast_burn", "slow_burn", "read_at"
    ):
        if read_at is None or remaining is None:
            found[service_id] = ("budget unknown", False)
        elif remaining <= 0:
            found[service_id] = ("budget spent", True)
        elif fast or slow:
            found[service_id] = (f"burning, {remaining:.0%} left", True)
        else:
            found[service_id] = (f"budget {remaining:.0%}", False)
    return found
