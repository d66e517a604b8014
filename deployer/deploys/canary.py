"""The canary's verdict as the rollout's next step: pass → the next batch; fail → the environment's
on_failure (rollback by default: every switched host back, and the reason names the metric, its value, the
baseline and the condition); inconclusive → `on_inconclusive`: pause for a person (the default in
production: retry the analysis, continue, or abort and roll back) or continue on health checks alone."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from deployer.catalog.analysis_spec import AnalysisSpec, metric_of
from deployer.choices import Decision, HostStatus, OnFailure
from deployer.deploys.analysis import Judged, analysis_run
from deployer.deploys.balancer import Balancer
from deployer.deploys.endings import Ended, Ending
from deployer.deploys.error_budget import budget_blocks
from deployer.deploys.fleet import Fleet, HostRun
from deployer.deploys.log import deploy_logger
from deployer.deploys.phases import phase
from deployer.deploys.recovery import after_failure, cancel_check, decision_wait
from deployer.lib.conditions import uses_baseline
from deployer.models import DeployPhase, Measurement

V = Measurement.Verdict


def without_baseline(spec: AnalysisSpec) -> AnalysisSpec | None:
    """The analysis with only its metrics that need no baseline (None: it has none)."""
    kept = [entry for entry in spec.metrics if not uses_baseline(metric_of(entry).condition)]
    return spec.model_copy(update={"metrics": kept}) if kept else None


def batch_judged(
    fleet: Fleet, analysis: AnalysisSpec, batch: list[HostRun], rest: list[HostRun], number: int
) -> Ended | None:
    """The first batch judged as the canary; with every_batch, each later one too (its baseline: the hosts
    still on the old release; the last batch has none, so only absolute conditions judge it)."""
    log = deploy_logger(fleet.deploy.pk)
    if not any(run.previous_release for run in fleet.runs):
        log.info("the first release here: no canary analysis (nothing to compare with)")
        return None
    spec = analysis if rest else without_baseline(analysis)
    if spec is None:
        log.info("batch %d: no host left on the old release and no absolute condition: not judged again", number)
        return None
    return canary_judged(fleet, spec, batch, rest)


def budget_between_batches(fleet: Fleet) -> Ended | None:
    """Before a later batch of a production deploy: the service's error budget spent or burning fast (its SLO
    gates) pauses the rollout for a person: look again, go on, or abort and roll back the switched hosts."""
    deploy, log = fleet.deploy, deploy_logger(fleet.deploy.pk)
    environment = deploy.environment
    if not environment.production or deploy.emergency_reason:
        return None
    while blocked := budget_blocks(environment.service):
        switched = [run for run in fleet.runs if run.status == HostStatus.LIVE]
        decision = decision_wait(fleet, f"error budget: {blocked}", switched)
        if isinstance(decision, Ended):
            return decision
        choice, who = decision
        if choice == Decision.ABORT:
            return after_failure(fleet, f"error budget: {blocked}; aborted by {who}", rolling_back=True)
        if choice == Decision.SKIP:
            log.info("%s chose to go on despite the error budget", who)
            return None
        log.info("%s asked to look at the error budget again", who)
    return None


def canary_judged(fleet: Fleet, spec: AnalysisSpec, canary: list[HostRun], baseline: list[HostRun]) -> Ended | None:
    """Judge the live canary against the baseline; None when the rollout goes on, else how it ended."""
    environment, log = fleet.deploy.environment, deploy_logger(fleet.deploy.pk)
    while True:
        label = f"canary analysis of {', '.join(run.name for run in canary)}"
        with _share(fleet, spec, canary, baseline), phase(fleet.deploy, DeployPhase.Kind.ANALYSIS, label) as row:
            judged = analysis_run(fleet, spec, canary, baseline, stop=lambda: cancel_check(fleet) is not None)
            row.label = f"{label}: {judged.verdict}, {judged.reason}" if judged else f"{label}: cancelled"
        if judged is None:
            return cancel_check(fleet) or Ended(Ending.CANCELLED, "cancelled during the canary analysis")
        if judged.verdict == V.PASS:
            log.info("%s", judged.reason)
            return None
        if judged.verdict == V.FAIL and environment.on_failure != OnFailure.PAUSE:
            reason = f"canary analysis: {judged.reason}"
            return after_failure(fleet, reason, rolling_back=environment.on_failure == OnFailure.ROLLBACK)
        policy = spec.on_inconclusive or ("pause" if environment.production else "continue")
        if judged.verdict == V.INCONCLUSIVE and policy == "continue":
            _continued(canary, judged, "on_inconclusive: continue")
            return None
        decision = decision_wait(fleet, f"canary analysis: {judged.reason}", canary)
        if isinstance(decision, Ended):
            return decision
        choice, who = decision
        if choice == Decision.ABORT:
            return after_failure(fleet, f"canary analysis: {judged.reason}; aborted by {who}", rolling_back=True)
        if choice == Decision.SKIP:
            _continued(canary, judged, f"{who} chose to continue")
            return None
        log.info("%s asked for the analysis again", who)


@contextmanager
def _share(fleet: Fleet, spec: AnalysisSpec, canary: list[HostRun], baseline: list[HostRun]) -> Iterator[None]:
    """Behind HAProxy, the canary's share of requests lowered to `traffic` % while it is judged."""
    balancer = Balancer.of(fleet.deploy.environment)
    if balancer is None or not baseline:
        yield
        return
    names = [run.host.balancer_name for run in canary], [run.host.balancer_name for run in baseline]
    with balancer.canary_share(*names, spec.traffic, deploy_logger(fleet.deploy.pk)):
        yield


def _continued(canary: list[HostRun], judged: Judged, why: str) -> None:
    note = f"the canary analysis was {judged.verdict} ({judged.reason}); went on on health checks alone ({why})"
    deploy_logger(canary[0].record.deploy_id).warning("%s", note)
    canary[0].notes.append(note)
