"""What a rollout does when a batch fails or someone cancels: roll the switched hosts back, stop, or pause
for a person's decision (retry, skip, abort); every one of them an ending (endings.py), never an exception.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.utils import timezone

from deployer.choices import Decision, DeployStatus, HostStatus, OnFailure
from deployer.deploys.activation import activate, activation_commands, roll_back
from deployer.deploys.endings import Ended, Ending, failed
from deployer.deploys.fleet import Fleet, HostRun, commands_plan, connection_ensure, host_move
from deployer.deploys.log import deploy_logger
from deployer.deploys.phase_hooks import hooks_of, hooks_run
from deployer.models import Deploy

PAUSE_POLL_SECONDS = 0.5


def batch_activate(fleet: Fleet, batch: list[HostRun]) -> Ended | None:
    """Switch, restart and health-check a batch; None when every host of it is live (or skipped by a person),
    else how the rollout ended: rolled back, stopped, or (guided) whatever a person decided."""
    deploy = fleet.deploy
    pending = batch
    while True:
        failure = fleet.each(lambda run: _activate(run, deploy), "activate", runs=pending)
        if not failure:
            return None
        # Cancelled with "stop now": no rollback, a person decides.
        if any(run.stopped for run in fleet.runs) and (cancelled := cancel_check(fleet)):
            return cancelled
        if deploy.is_join:  # its hosts are new here and served nothing: they stay out; the others were not touched
            return after_failure(
                fleet, f"{failure}; it gets no traffic (the next deploy tries again)", rolling_back=False
            )
        on_failure = deploy.environment.on_failure
        if on_failure != OnFailure.PAUSE:
            return after_failure(fleet, failure, rolling_back=on_failure == OnFailure.ROLLBACK)
        failed_runs = [run for run in pending if run.status in {HostStatus.FAILED, HostStatus.STOPPED}]
        decision = decision_wait(fleet, failure, failed_runs)
        if isinstance(decision, Ended):
            return decision
        choice, who = decision
        if choice == Decision.ABORT:
            return after_failure(fleet, failure, rolling_back=True)
        if choice == Decision.SKIP:
            for run in failed_runs:
                host_move(run, HostStatus.SKIPPED, f"skipped by {who} after: {run.record.message}")
            return None
        pending = failed_runs  # retry


def _activate(run: HostRun, deploy: Deploy) -> None:
    host_move(run, HostStatus.ACTIVATING, "switching, restarting, health check")
    activate(run, deploy)
    host_move(run, HostStatus.LIVE, "live")


def _back(run: HostRun, deploy: Deploy) -> None:
    host_move(run, HostStatus.ACTIVATING, f"rolling back to release {run.previous_release}")
    connection_ensure(run)
    commands_plan(run, activation_commands(run, deploy))
    roll_back(run, deploy)
    host_move(run, HostStatus.ROLLED_BACK, f"rolled back to release {run.previous_release}")


def roll_back_switched(fleet: Fleet, runs: list[HostRun]) -> str:
    """Every host of `runs` back to its previous release, then the once after_rollback hooks; "" when all
    went back, else what failed (each such host says where its `current` points)."""
    if failure := fleet.each(lambda run: _back(run, fleet.deploy), "rollback", runs=runs):
        return failure
    release_run = next((run for run in fleet.runs if run.release_host), fleet.runs[0])
    if release_run.reached and hooks_of(fleet.deploy, "after_rollback", once=True):
        cwd = f"{release_run.path}/current"
        hooks_run(release_run, fleet.deploy, "after_rollback", cwd, once=True, outcome="rolled_back")
    return ""


def after_failure(fleet: Fleet, failure: str, *, rolling_back: bool) -> Ended:
    """End the rollout after a failure: roll the switched hosts back first when asked to. A host that had
    no release before this deploy (its first) has nothing to go back to: it is left as it is, and said so."""
    log = deploy_logger(fleet.deploy.pk)
    first = [run for run in fleet.runs if run.switched and not run.previous_release]
    switched = [run for run in fleet.runs if run.switched and run.previous_release]
    if first and rolling_back:
        names = ", ".join(run.name for run in first)
        log.warning(
            "%s had no earlier release to go back to (this deploy was its first): left on the new release", names
        )
        failure = f"{failure}; nothing to roll back to on {names} (its first deploy)"
    if not rolling_back or not switched:
        return failed(failure)
    log.warning("rolling back %s to their previous release", ", ".join(run.name for run in switched))
    if rollback_failure := roll_back_switched(fleet, switched):
        reason = f"{failure}; and the rollback failed too: {rollback_failure}{_suspect(failure, rollback_failure)}"
        return Ended(Ending.ROLLBACK_FAILED, reason)
    return Ended(Ending.ROLLED_BACK, f"{failure}; rolled back {', '.join(run.name for run in switched)}")


def _suspect(failure: str, rollback_failure: str) -> str:
    """When the release that ran fine until now fails the same health check, the check is the likely culprit."""
    if "health check" in failure and "health check" in rollback_failure:
        return (
            ". The previous release fails the same health check too: the check itself is suspect (its URL, "
            "its port, a redirect), more than either release"
        )
    return ""


def cancel_check(fleet: Fleet) -> Ended | None:
    """Between batches: the ending when someone cancelled the deploy, or an admin ended it meanwhile."""
    deploy = fleet.deploy
    row = Deploy.objects.filter(pk=deploy.pk).values_list("status", "cancel_requested_at", "cancelled_by__username")
    status, cancel_requested_at, who = row.first() or (DeployStatus.FAILED, None, None)
    if status == DeployStatus.RUNNING and cancel_requested_at is None:
        return None
    done = sum(run.switched for run in fleet.runs)
    where = f"after {done} of {len(fleet.runs)} hosts; {fleet.where()}"
    if status != DeployStatus.RUNNING:
        return Ended(Ending.CANCELLED, f"stopped: the deploy was marked {status} meanwhile, {where}")
    return Ended(Ending.CANCELLED, f"cancelled by {who or 'someone'} {where}")


def cancelled_or_failed(fleet: Fleet, failure: str) -> Ended:
    """A step failed before any switch: cancelled when it failed because a person stopped its command."""
    if any(run.stopped for run in fleet.runs) and (cancelled := cancel_check(fleet)):
        return cancelled
    return failed(failure)


def decision_wait(fleet: Fleet, failure: str, failed_runs: list[HostRun]) -> tuple[Decision, str] | Ended:
    """Pause (heartbeat still running) until a person chooses retry, skip or abort; abort when none comes;
    a cancel meanwhile ends the rollout."""
    deploy = fleet.deploy
    log = deploy_logger(deploy.pk)
    names = ", ".join(run.name for run in failed_runs)
    Deploy.objects.filter(pk=deploy.pk).update(
        paused_at=timezone.now(), pause_reason=failure, decision="", decided_by=None
    )
    minutes = settings.PAUSE_TIMEOUT_SECONDS // 60
    log.warning(
        "paused: %s. Waiting up to %d min for a person to retry %s, skip it, or abort and roll back",
        failure,
        minutes,
        names,
    )
    deadline = time.monotonic() + settings.PAUSE_TIMEOUT_SECONDS
    while True:
        if cancelled := cancel_check(fleet):
            return cancelled
        choice, who = Deploy.objects.filter(pk=deploy.pk).values_list("decision", "decided_by__username").get()
        if choice:
            Deploy.objects.filter(pk=deploy.pk).update(paused_at=None)
            log.info("%s chose: %s (%s)", who, Decision(choice).label, names)
            return Decision(choice), who or "someone"
        if time.monotonic() >= deadline:
            Deploy.objects.filter(pk=deploy.pk).update(paused_at=None)
            log.warning("no decision within %d min: aborting", minutes)
            return Decision.ABORT, "Gantry (no decision in time)"
        time.sleep(PAUSE_POLL_SECONDS)


def on_failure_hooks(fleet: Fleet, ended: Ended) -> None:
    """The on_failure hooks, on every host still connected; they never change the ending."""
    deploy = fleet.deploy
    if ended.live or not hooks_of(deploy, "on_failure"):
        return
    outcome = {Ending.CANCELLED: "cancelled", Ending.ROLLED_BACK: "rolled_back"}.get(ended.ending, "failed")

    def hooks(run: HostRun) -> None:
        hooks_run(run, deploy, "on_failure", run.path, outcome=outcome)
        if run.release_host:
            hooks_run(run, deploy, "on_failure", run.path, once=True, outcome=outcome)

    reached = [run for run in fleet.runs if run.reached]
    if failure := fleet.each(hooks, "on_failure", runs=reached, hosts_fail=False):  # a lost connection only
        deploy_logger(deploy.pk).warning("on_failure hooks: %s", failure)
