"""The canary's analysis: after the first batch (the canary) is live, its metrics are measured in Prometheus
against the hosts still on the old release (the baseline), over the same windows, every `interval` seconds,
`count` times per metric; each measurement is kept (models.Measurement) and the analysis ends in a verdict:
pass, fail or inconclusive (rollout.py maps it onto an ending or a pause).

No data is never a pass: an empty answer, NaN, ±Inf, a sample below `min_sample`, Prometheus down, slow or
refusing the query all make a measurement inconclusive. The analysis is bounded (bake + count × interval),
and a cancel is honoured between measurements.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from deployer.catalog.analysis_spec import AnalysisSpec, MetricSpec
from deployer.deploys.fleet import Fleet, HostRun
from deployer.deploys.log import deploy_logger
from deployer.integrations import prometheus_api as prometheus
from deployer.lib.conditions import condition_holds, uses_baseline
from deployer.models import Deploy, Measurement

V = Measurement.Verdict
BAKE_POLL = 2.0  # seconds between looks at the canary's sample while baking
SLEEP_STEP = 0.5  # how often a wait looks for a cancel


@dataclass(frozen=True)
class Judged:
    """How an analysis ended: its verdict, and why (names the metric, its value, the baseline, the condition)."""

    verdict: V
    reason: str


@dataclass
class _Tally:
    metric: MetricSpec
    failed: int = 0
    inconclusive: int = 0
    last: str = ""  # what the latest failed or inconclusive measurement said
    done: int = 0
    said: list[str] = field(default_factory=list)
    first: int = 0  # measurements of this metric earlier in the deploy (an earlier batch's): numbers go on

    @property
    def verdict(self) -> V | None:
        """The metric's verdict once it has one (None: keep measuring)."""
        if self.metric.dry_run:
            return V.PASS if self.done >= self.metric.count else None
        if self.failed > self.metric.failure_limit:
            return V.FAIL
        if self.inconclusive > self.metric.inconclusive_limit:
            return V.INCONCLUSIVE
        return V.PASS if self.done >= self.metric.count else None


def analysis_of(fleet: Fleet) -> AnalysisSpec | None:
    analysis = fleet.deploy.environment.analysis
    return AnalysisSpec.model_validate(analysis) if analysis else None


def analysis_run(
    fleet: Fleet, spec: AnalysisSpec, canary: list[HostRun], baseline: list[HostRun], stop: Callable[[], bool]
) -> Judged | None:
    """Measure every metric until each has a verdict; the analysis' verdict (None: `stop` said to stop)."""
    log = deploy_logger(fleet.deploy.pk)
    url = settings.PROMETHEUS_SERVERS.get(spec.prometheus, "")
    if not url:
        return Judged(V.INCONCLUSIVE, f"no Prometheus server {spec.prometheus!r} in GANTRY_PROMETHEUS here")
    names = ", ".join(run.name for run in canary)
    log.info(
        "canary analysis of %s against %s: %s",
        names,
        ", ".join(run.name for run in baseline) or "no baseline (absolute conditions only)",
        ", ".join(metric.name for metric in spec.judged_by),
    )
    started = time.monotonic()
    if spec.bake and _wait(started + spec.bake, stop):
        return None
    if spec.bake_max > spec.bake and _baked(fleet, spec, url, canary, until=started + spec.bake_max, stop=stop):
        return None
    earlier = dict(
        Measurement.objects.filter(deploy=fleet.deploy)
        .values_list("metric")
        .annotate(n=Count("pk"))
        .values_list("metric", "n")
    )
    tallies = [_Tally(metric, first=earlier.get(metric.name, 0)) for metric in spec.judged_by]
    begin = time.monotonic()
    due = {id(tally): begin + tally.metric.interval for tally in tallies}
    while undecided := [tally for tally in tallies if tally.verdict is None]:
        tally = min(undecided, key=lambda t: due[id(t)])
        if _wait(due[id(tally)], stop):
            return None
        due[id(tally)] += tally.metric.interval
        _measure(fleet, spec, url, tally, canary, baseline)
        if any(t.verdict == V.FAIL for t in tallies):
            break  # a failed metric ends the analysis at once: the canary goes back sooner
    return _judged(tallies, names)


def _baked(
    fleet: Fleet, spec: AnalysisSpec, url: str, canary: list[HostRun], *, until: float, stop: Callable[[], bool]
) -> bool:
    """Wait until every metric's canary sample reaches its min_sample, or `until`; True: `stop` said to stop.
    Measuring a canary that has had no traffic yet would only count inconclusive measurements."""
    log = deploy_logger(fleet.deploy.pk)
    waiting = [metric for metric in spec.judged_by if metric.sample and metric.min_sample]
    while waiting:
        short = []
        for metric in waiting:
            sample = _value(url, _rendered(metric.sample, fleet, spec, canary), time.time())
            if not isinstance(sample, float) or sample < metric.min_sample:
                short.append(
                    f"{metric.name} {_shown(sample) if isinstance(sample, float) else 0} of {metric.min_sample:g}"
                )
        if not short:
            log.info("bake: every metric has its minimum sample; measuring")
            return False
        if time.monotonic() + BAKE_POLL > until:
            log.info("bake: at bake_max with samples still short (%s); measuring anyway", ", ".join(short))
            return False
        log.info("bake: waiting for traffic on the canary (%s)", ", ".join(short))
        if _wait(time.monotonic() + BAKE_POLL, stop):
            return True
    return False


def _wait(until: float, stop: Callable[[], bool]) -> bool:
    """Sleep until `until`; True when `stop` said to stop meanwhile."""
    while (left := until - time.monotonic()) > 0:
        if stop():
            return True
        time.sleep(min(SLEEP_STEP, left))
    return stop()


def _judged(tallies: list[_Tally], names: str) -> Judged:
    for verdict, word in ((V.FAIL, "failed"), (V.INCONCLUSIVE, "was inconclusive")):
        if bad := [t for t in tallies if t.verdict == verdict]:
            return Judged(verdict, f"canary {names}: " + "; ".join(f"{t.metric.name} {word}: {t.last}" for t in bad))
    passed = "; ".join(f"{t.metric.name}: {t.said[-1] if t.said else 'passed'}" for t in tallies)
    return Judged(V.PASS, f"canary {names} passed: {passed}")


def _measure(
    fleet: Fleet, spec: AnalysisSpec, url: str, tally: _Tally, canary: list[HostRun], baseline: list[HostRun]
) -> None:
    metric, deploy = tally.metric, fleet.deploy
    at = time.time()
    tally.done += 1
    needs_baseline = uses_baseline(metric.condition)
    canary_query = _rendered(metric.query, fleet, spec, canary)
    baseline_query = _rendered(metric.query, fleet, spec, baseline) if needs_baseline and baseline else ""
    values = {"canary": _value(url, canary_query, at), "baseline": _value(url, baseline_query, at)}
    samples = {
        "canary": _value(url, _rendered(metric.sample, fleet, spec, canary), at) if metric.sample else None,
        "baseline": _value(url, _rendered(metric.sample, fleet, spec, baseline), at)
        if metric.sample and baseline_query
        else None,
    }
    verdict, said = _verdict(metric, values, samples, needs_baseline, bool(baseline))
    if verdict == V.FAIL:
        tally.failed += not metric.dry_run
    elif verdict == V.INCONCLUSIVE:
        tally.inconclusive += not metric.dry_run
    if verdict != V.PASS:
        tally.last = said
    tally.said.append(said)
    Measurement.objects.create(
        deploy=deploy,
        metric=metric.name,
        number=tally.first + tally.done,
        canary_query=canary_query,
        baseline_query=baseline_query,
        canary=_stored(values["canary"]),
        baseline=_stored(values["baseline"]),
        canary_sample=_stored(samples["canary"]),
        baseline_sample=_stored(samples["baseline"]),
        condition=metric.condition,
        verdict=verdict,
        dry_run=metric.dry_run,
        said=said[:500],
        measured_at=timezone.now(),
    )
    dry = " (dry run: not counted)" if metric.dry_run else ""
    deploy_logger(deploy.pk).info("%s %d/%d: %s — %s%s", metric.name, tally.done, metric.count, verdict, said, dry)


def _verdict(
    metric: MetricSpec,
    values: dict[str, float | str | None],
    samples: dict[str, float | str | None],
    needs_baseline: bool,
    has_baseline: bool,
) -> tuple[V, str]:
    """One measurement's verdict and what to say about it. A string value is why there is no number."""
    canary, base = values["canary"], values["baseline"]
    if isinstance(canary, str) or canary is None:
        return V.INCONCLUSIVE, f"no canary value ({canary or 'no data'})"
    if needs_baseline and not has_baseline:
        return V.INCONCLUSIVE, "no baseline: every host is in the canary (write an absolute condition)"
    if needs_baseline and (isinstance(base, str) or base is None):
        return V.INCONCLUSIVE, f"no baseline value ({base or 'no data'})"
    for group in ("canary", "baseline") if needs_baseline else ("canary",):
        sample = samples[group]
        if metric.sample and (not isinstance(sample, float) or sample < metric.min_sample):
            shown = _shown(sample) if isinstance(sample, float) else (sample or "no data")
            return V.INCONCLUSIVE, f"{group} sample {shown} is below min_sample {metric.min_sample:g}"
    numbers = {"canary": canary, "baseline": base if isinstance(base, float) else None}
    compared = f"{_shown(canary)}" + (f" vs baseline {_shown(numbers['baseline'])}" if needs_baseline else "")
    holds = condition_holds(metric.condition, numbers)
    if holds is None:
        return V.INCONCLUSIVE, f"{compared}: not a number to judge ({metric.condition})"
    return (V.PASS, f"{compared}: {metric.condition}") if holds else (V.FAIL, f"{compared}: not {metric.condition}")


def _value(url: str, query: str, at: float) -> float | str | None:
    """The query's one value: a finite float; a string saying why there is none; None when not asked."""
    if not query:
        return None
    try:
        samples = prometheus.query(url, query, at=at, timeout=settings.PROMETHEUS_TIMEOUT)
    except prometheus.PrometheusError as exc:
        return str(exc)
    if not samples:
        return "no data: the query returned no series"
    if len(samples) > 1:
        return f"the query returned {len(samples)} series, not one: sum them"
    value = samples[0].value
    return value if math.isfinite(value) else f"{value} (no data in the window)"


def _rendered(query: str | None, fleet: Fleet, spec: AnalysisSpec, runs: list[HostRun]) -> str:
    if not query:
        return ""
    deploy = fleet.deploy
    labels = [spec.instance.format(address=run.host.address, lb_server=run.host.balancer_name) for run in runs]
    values = {
        "{{service}}": deploy.environment.service.name,
        "{{environment}}": deploy.environment.name,
        "{{hosts}}": _regex(labels),
        "{{servers}}": _regex([run.host.balancer_name for run in runs]),
        "{{backend}}": deploy.environment.lb_backend or deploy.environment.service.name,
        "{{window}}": spec.window,
        "{{sha}}": deploy.sha,
        "{{release}}": deploy.release_name,
    }
    for placeholder, value in values.items():
        query = query.replace(placeholder, value)
    return query


def _regex(names: list[str]) -> str:
    """A regex matching exactly `names`, inside a PromQL string: each name's regex escapes, escaped again."""
    return "|".join(re.escape(name).replace(chr(92), chr(92) * 2) for name in names)


def _stored(value: float | str | None) -> float | None:
    return value if isinstance(value, float) and math.isfinite(value) else None


def _shown(value: float | None) -> str:
    if value is None:
        return "no data"
    return f"{value:.4g}"


@dataclass(frozen=True)
class Rejudged:
    """A stored measurement judged again by today's catalog: its verdict then and now, and why."""

    measurement: Measurement
    verdict: V
    said: str


def analysis_rejudged(deploy: Deploy, spec: AnalysisSpec) -> tuple[list[Rejudged], Judged]:
    """The deploy's measurements judged again by `spec` (today's catalog): no query is sent, the values it
    measured then meet today's conditions, sample minimums and limits; for tuning thresholds without a deploy."""
    metrics = {metric.name: metric for metric in spec.judged_by}
    tallies = {name: _Tally(metric) for name, metric in metrics.items()}
    out = []
    for m in deploy.measurements.all():
        metric = metrics.get(m.metric)
        if metric is None:
            out.append(Rejudged(m, V.INCONCLUSIVE, "today's catalog has no such metric"))
            continue
        needs_baseline = uses_baseline(metric.condition)
        values: dict[str, float | str | None] = {"canary": m.canary, "baseline": m.baseline}
        samples: dict[str, float | str | None] = {"canary": m.canary_sample, "baseline": m.baseline_sample}
        verdict, said = _verdict(metric, values, samples, needs_baseline, bool(m.baseline_query))
        tally = tallies[m.metric]
        tally.done += 1
        tally.failed += verdict == V.FAIL and not metric.dry_run
        tally.inconclusive += verdict == V.INCONCLUSIVE and not metric.dry_run
        tally.last = said if verdict != V.PASS else tally.last
        tally.said.append(said)
        out.append(Rejudged(m, verdict, said))
    measured = [tally for tally in tallies.values() if tally.done]
    for tally in measured:  # what was measured is all there is: a metric with fewer measurements is judged on them
        tally.metric = tally.metric.model_copy(update={"count": min(tally.metric.count, tally.done)})
    return out, _judged(measured, "as measured") if measured else Judged(V.INCONCLUSIVE, "nothing measured")
