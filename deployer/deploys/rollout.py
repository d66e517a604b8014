"""Rolling one release out over an environment's hosts.

1. Every host is staged (upload, extract, build), in parallel, before any host
   is switched: a failed build leaves `current` untouched everywhere.
2. Hosts are switched in batches (the environment's batch size), in parallel
   within a batch: switch, restart, health check. The next batch starts only
   when every host of this one is healthy.
3. When a host fails, the rollout stops; with on_failure=rollback every host
   this deploy switched goes back to its previous release.
4. A cancel request is honoured between batches: hosts in flight finish, and
   every host is left on a complete release.

This file is the orchestration; what each step runs on a host is in host_steps.py and activation.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from django.conf import settings
from django.utils import timezone

from deployer.choices import Decision, DeployStatus, HostStatus, OnFailure
from deployer.deploys.activation import activate, roll_back
from deployer.deploys.batches import batch_sizes
from deployer.deploys.fleet import connected, connected_while, host_runs, in_parallel
from deployer.deploys.host_steps import (
    HostRun,
    build,
    check_kept,
    connection_ensure,
    host_update,
    post_release,
    prune,
    release_phase,
    stage,
)
from deployer.deploys.log import deploy_logger
from deployer.deploys.phase_hooks import HookFailed, hooks_of, hooks_run
from deployer.deploys.roles import default_release_host, environment_roles
from deployer.errors import Cancelled, RollbackFailed, RolledBack, StepFailed
from deployer.models import Deploy

PAUSE_POLL_SECONDS = 0.5


def rollout(
    deploy: Deploy,
    archive: Path | None,
    *,
    config: bytes = b"",
    checksum: str = "",
    artifact: Callable[[Callable[[], None]], tuple[Path, str]] | None = None,
    on_batch: Callable[[Deploy], None] = lambda _: None,
) -> str:
    """Install `archive` as release <deploy id> on every host (with `config` as its shared config file);
    for a rollback (archive None), switch every host back to the earlier release it still has. With
    `checksum`, `archive` was built once on the builder: each host checks it and builds nothing.
    `artifact`, when given, makes that (archive, checksum) while every host is being connected (the
    builder builds, Jenkins' file downloads): the hosts wait ready for it. It calls the function it is
    given once its own work has begun (the builder's start goes first: it is the critical path).
    `on_batch` hears of every batch that went live (the caller tells Slack).

    Raises StepFailed (naming the hosts) when a host fails, RolledBack when the
    switched hosts were rolled back, Cancelled when someone cancelled it,
    PostReleaseFailed when every host is live but post_release_command failed;
    the on_failure hooks have run by then.
    Returns a note for the deploy's reason (hosts skipped, hooks that failed without stopping it).
    """
    with connected(host_runs(deploy)) as runs:
        try:
            if artifact is not None:
                archive, checksum = connected_while(runs, artifact)
            _roll_out(deploy, runs, archive, config, checksum, on_batch)
        except StepFailed as exc:
            if any(run.stopped for run in runs):  # stopped while staging or in a hook
                try:
                    _stop_if_cancelled(deploy, runs, sum(run.switched for run in runs))
                except Cancelled as cancelled:
                    _on_failure(deploy, runs, cancelled)
                    raise cancelled from exc
            _on_failure(deploy, runs, exc)
            raise
        except Cancelled as exc:
            _on_failure(deploy, runs, exc)
            raise
        notes = [note for run in runs for note in run.notes]
        skipped = [run.name for run in runs if run.skipped]
        if skipped:
            notes.insert(0, f"succeeded without {', '.join(skipped)} (skipped after failing)")
        return "; ".join(notes)


def _roll_out(
    deploy: Deploy,
    runs: list[HostRun],
    archive: Path | None,
    config: bytes,
    checksum: str,
    on_batch: Callable[[Deploy], None],
) -> None:
    environment = deploy.environment
    release_run = _release_host(deploy, runs)
    release_run.release_host = True
    in_balancer = [run for run in runs if run.balancer is not None]
    if in_balancer and (balancer := in_balancer[0].balancer) is not None:
        balancer.reconcile([run.host.balancer_name for run in in_balancer], deploy_logger(deploy.pk))
    if archive is not None and not checksum:
        _announce(deploy, "build_command", environment.build_command, "on every host, in the new release")
    in_parallel(runs, lambda r: _stage_host(r, deploy, archive, config, checksum), "stage")
    if archive is not None and environment.release_command.strip():
        _release_phase(deploy, release_run)
    _announce_restarts(deploy, runs)
    _once(deploy, release_run, "before_switch", f"releases/{deploy.release_name}")
    sizes = batch_sizes(len(runs), environment.batch_size)
    done = 0
    for number, size in enumerate(sizes, start=1):
        _stop_if_cancelled(deploy, runs, done)
        batch = runs[done : done + size]
        deploy_logger(deploy.pk).info("batch %d of %d: %s", number, len(sizes), ", ".join(r.name for r in batch))
        _activate_batch(deploy, runs, batch)
        done += size
        on_batch(deploy)
    try:
        _once(deploy, release_run, "after_switch", "current")
    except HookFailed as exc:  # as a host failing its switch would: every switched host goes back
        _after_failure(deploy, runs, exc, rolling_back=environment.on_failure != OnFailure.STOP)
    if archive is not None and environment.post_release_command.strip():
        _post_release(deploy, runs, release_run)
    # A rollback deploy is a rollback to the people who wrote the hooks.
    final, outcome = ("after_deploy", "succeeded") if archive is not None else ("after_rollback", "rolled_back")
    live = [run for run in runs if not run.skipped]
    in_parallel(live, lambda r: _final_hooks(r, deploy, final, outcome), final, hosts_failed=False)


def _stage_host(run: HostRun, deploy: Deploy, archive: Path | None, config: bytes, checksum: str) -> None:
    """Connect, then stage: unpack and link, the build hooks around build_command (or, for a rollback,
    check the earlier release is still there)."""
    connection_ensure(run)
    if archive is None:
        check_kept(run, deploy)
        return
    before = bool(hooks_of(deploy, "before_build", once=None))
    stage(run, deploy, archive, config, with_build=not before and not checksum, checksum=checksum)
    release_dir = f"{run.path}/releases/{deploy.release_name}"
    if before:
        _host_hooks(run, deploy, "before_build", release_dir)
        if not checksum:
            build(run, deploy)
    _host_hooks(run, deploy, "after_build", release_dir)


def _host_hooks(run: HostRun, deploy: Deploy, phase: str, cwd: str, outcome: str = "") -> None:
    """The phase's per-host hooks, and on the release host its once hooks too."""
    hooks_run(run, deploy, phase, cwd, outcome=outcome)
    if run.release_host:
        hooks_run(run, deploy, phase, cwd, once=True, outcome=outcome)


def _final_hooks(run: HostRun, deploy: Deploy, phase: str, outcome: str) -> None:
    _host_hooks(run, deploy, phase, f"{run.path}/current", outcome)


def _once(deploy: Deploy, run: HostRun, phase: str, where: str, outcome: str = "") -> None:
    """The phase's once hooks, on the release host (between batches: before the first, after the last)."""
    if hooks_of(deploy, phase, once=True):
        hooks_run(run, deploy, phase, f"{run.path}/{where}", once=True, outcome=outcome)


def _on_failure(deploy: Deploy, runs: list[HostRun], exc: Exception) -> None:
    """The on_failure hooks, on every host still connected; they never change the outcome."""
    if not hooks_of(deploy, "on_failure"):
        return
    outcome = "cancelled" if isinstance(exc, Cancelled) else "rolled_back" if isinstance(exc, RolledBack) else "failed"
    connected = [run for run in runs if run.reached]
    try:
        in_parallel(
            connected, lambda r: _host_hooks(r, deploy, "on_failure", r.path, outcome), "on_failure", hosts_failed=False
        )
    except StepFailed as hook_failure:  # never raised by these hooks; a lost connection is only logged
        deploy_logger(deploy.pk).warning("on_failure hooks: %s", hook_failure)


class PostReleaseFailed(StepFailed):
    """Every host runs the new release; the command meant to run after that failed (nothing is rolled back)."""


def _announce(deploy: Deploy, key: str, command: str, where: str) -> None:
    """The whole command, once per deploy (each host's log then shows only its output)."""
    if command.strip():
        deploy_logger(deploy.pk).info("%s (%s):\n%s", key, where, command.strip())


def _announce_restarts(deploy: Deploy, runs: list[HostRun]) -> None:
    for role in environment_roles(deploy.environment):
        hosts = [run.name for run in runs if role in run.roles]
        where = "every host" if len(hosts) == len(runs) else ", ".join(hosts) or "no host"
        name = "restart_command" if role.name == "app" and not deploy.environment.roles else f"{role.name}: restart"
        _announce(deploy, name, role.restart_command, f"on {where}, in current, after the switch")


def _release_host(deploy: Deploy, runs: list[HostRun]) -> HostRun:
    """The catalog's release_host, else the first host of the first role."""
    if wanted := deploy.environment.release_host:
        return next((run for run in runs if run.host.address == wanted), runs[0])
    first = default_release_host([run.host for run in runs], environment_roles(deploy.environment))
    return next(run for run in runs if run.host == first)


def _release_phase(deploy: Deploy, run: HostRun) -> None:
    """release_command, once per deploy, on the release host, after every host is staged, before any switch.

    Claimed on the deploy row first: whatever redelivers or retries, it never runs twice for one deploy.
    """
    log = deploy_logger(deploy.pk)
    claimed = Deploy.objects.filter(pk=deploy.pk, release_started_at__isnull=True).update(
        release_started_at=timezone.now(), release_ran_on=run.name
    )
    if not claimed:
        log.warning("the release phase of this deploy already began once; it never runs twice: not running it")
        return
    _announce(deploy, "release_command", deploy.environment.release_command, f"once, on {run.name}, before any switch")
    host_update(run, HostStatus.STAGED, "running the release phase")
    try:
        release_phase(run, deploy)
    except StepFailed as exc:
        host_update(run, HostStatus.FAILED, str(exc))
        raise StepFailed(f"{exc}; no host was switched") from exc
    host_update(run, HostStatus.STAGED, "release phase done")
    log.info("release phase done on %s", run.name)


def _post_release(deploy: Deploy, runs: list[HostRun], release_run: HostRun) -> None:
    run = release_run if not release_run.skipped else next(r for r in runs if not r.skipped)
    _announce(deploy, "post_release_command", deploy.environment.post_release_command, f"once, on {run.name}")
    # It may change the schema even when it fails: a rollback across this deploy asks for confirmation.
    Deploy.objects.filter(pk=deploy.pk).update(post_release_ran_at=timezone.now())
    try:
        post_release(run, deploy)
    except StepFailed as exc:
        raise PostReleaseFailed(f"{exc}; every host runs the new release (nothing was rolled back)") from exc


def prune_all(deploy: Deploy) -> None:
    """After the deploy's end is recorded: old releases removed on every host at once (never delays the end;
    failures only warn)."""
    records = list(deploy.hosts.select_related("host").filter(host__isnull=False))
    runs = host_runs(deploy, records=records)
    for run in runs:
        run.switched = False

    def one(run: HostRun) -> None:
        try:
            connection_ensure(run)
        except StepFailed as exc:  # the host's record stays as the deploy left it
            run.log.warning("could not remove old releases (the deploy is fine): %s", exc)
            return
        prune(run, deploy)

    with connected(runs):
        in_parallel(runs, one, "prune")


def roll_back_all(deploy: Deploy) -> list[str]:
    """After a finished rollout (its post-deploy tests failed): every host back to its previous release.

    Returns the hosts rolled back; StepFailed naming those that could not be.
    """
    records = deploy.hosts.select_related("host").filter(host__isnull=False)
    runs = host_runs(deploy, records=list(records))

    def back(run: HostRun) -> None:
        connection_ensure(run)
        roll_back(run, deploy)

    with connected(runs):
        in_parallel(runs, back, "rollback")
        _once_after_rollback(deploy, runs)
    return [run.name for run in runs]


def _once_after_rollback(deploy: Deploy, runs: list[HostRun]) -> None:
    run = next((r for r in runs if r.release_host), runs[0])
    if run.reached:
        _once(deploy, run, "after_rollback", "current", "rolled_back")


def _activate_batch(deploy: Deploy, runs: list[HostRun], batch: list[HostRun]) -> None:
    """Activate a batch; on failure roll back, stop, or (guided) wait for a person's decision."""
    pending = batch
    while True:
        try:
            in_parallel(pending, lambda r: activate(r, deploy), "activate")
            return
        except StepFailed as exc:
            if any(run.stopped for run in runs):  # cancelled with "stop now": no rollback, a person decides
                _stop_if_cancelled(deploy, runs, sum(run.switched for run in runs))
            on_failure = deploy.environment.on_failure
            if on_failure != OnFailure.PAUSE:
                _after_failure(deploy, runs, exc, rolling_back=on_failure == OnFailure.ROLLBACK)
            failed = [run for run in pending if run.failed]
            choice, who = _wait_for_decision(deploy, runs, exc, failed)
            if choice == Decision.ABORT:
                _after_failure(deploy, runs, exc, rolling_back=True)
            for run in failed:
                run.failed = False
            if choice == Decision.SKIP:
                for run in failed:
                    run.skipped = True
                    host_update(run, HostStatus.SKIPPED, f"skipped by {who} after: {run.record.message}")
                return
            pending = failed  # retry


def _wait_for_decision(
    deploy: Deploy, runs: list[HostRun], exc: StepFailed, failed: list[HostRun]
) -> tuple[Decision, str]:
    """Pause (heartbeat still running) until a person chooses retry, skip or abort; abort when none comes."""
    log = deploy_logger(deploy.pk)
    names = ", ".join(run.name for run in failed)
    Deploy.objects.filter(pk=deploy.pk).update(
        paused_at=timezone.now(), pause_reason=str(exc), decision="", decided_by=None
    )
    log.warning(
        "paused: %s. Waiting up to %d min for a person to retry %s, skip it, or abort and roll back",
        exc,
        settings.PAUSE_TIMEOUT_SECONDS // 60,
        names,
    )
    deadline = time.monotonic() + settings.PAUSE_TIMEOUT_SECONDS
    while True:
        _stop_if_cancelled(deploy, runs, sum(run.switched for run in runs))
        choice, who = Deploy.objects.filter(pk=deploy.pk).values_list("decision", "decided_by__username").get()
        if choice:
            Deploy.objects.filter(pk=deploy.pk).update(paused_at=None)
            log.info("%s chose: %s (%s)", who, Decision(choice).label, names)
            return Decision(choice), who or "someone"
        if time.monotonic() >= deadline:
            Deploy.objects.filter(pk=deploy.pk).update(paused_at=None)
            log.warning("no decision within %d min: aborting", settings.PAUSE_TIMEOUT_SECONDS // 60)
            return Decision.ABORT, "Gantry (no decision in time)"
        time.sleep(PAUSE_POLL_SECONDS)


def _after_failure(deploy: Deploy, runs: list[HostRun], exc: StepFailed, *, rolling_back: bool) -> NoReturn:
    """End the rollout after a failure: roll the switched hosts back first when asked to. A host that had
    no release before this deploy (its first) has nothing to go back to: it is left as it is, and said so."""
    first = [run for run in runs if run.switched and not run.previous_release]
    switched = [run for run in runs if run.switched and run.previous_release]
    if first and rolling_back:
        deploy_logger(deploy.pk).warning(
            "%s had no earlier release to go back to (this deploy was its first): left on the new release",
            ", ".join(run.name for run in first),
        )
        exc = StepFailed(f"{exc}; nothing to roll back to on {', '.join(run.name for run in first)} (its first deploy)")
    if not rolling_back or not switched:
        raise exc
    deploy_logger(deploy.pk).warning(
        "rolling back %s to their previous release", ", ".join(run.name for run in switched)
    )
    try:
        in_parallel(switched, lambda r: roll_back(r, deploy), "rollback")
    except StepFailed as rollback_failure:
        raise RollbackFailed(
            f"{exc}; and the rollback failed too: {rollback_failure}{_suspect(exc, rollback_failure)}"
        ) from exc
    _once_after_rollback(deploy, runs)
    raise RolledBack(f"{exc}; rolled back {', '.join(run.name for run in switched)}") from exc


def _suspect(failure: StepFailed, rollback_failure: StepFailed) -> str:
    """When the release that ran fine until now fails the same health check, the check is the likely culprit."""
    if "health check" in str(failure) and "health check" in str(rollback_failure):
        return (
            ". The previous release fails the same health check too: the check itself is suspect (its URL, "
            "its port, a redirect), more than either release"
        )
    return ""


def _stop_if_cancelled(deploy: Deploy, runs: list[HostRun], done: int) -> None:
    """Between batches: stop if someone cancelled the deploy, or an admin ended it meanwhile."""
    row = Deploy.objects.filter(pk=deploy.pk).values_list("status", "cancel_requested_at", "cancelled_by__username")
    status, cancel_requested_at, who = row.first() or (DeployStatus.FAILED, None, None)
    if status == DeployStatus.RUNNING and cancel_requested_at is None:
        return
    new = [run.name for run in runs if run.switched]
    old = [run.name for run in runs if not run.switched]
    where = (
        f"after {done} of {len(runs)} hosts; "
        f"on the new release: {', '.join(new) or 'none'}; still on the previous one: {', '.join(old) or 'none'}"
    )
    if stopped := [run.name for run in runs if run.stopped]:
        where += f"; stopped in the middle of a command: {', '.join(stopped)} (check them: roll back, or deploy again)"
    if status != DeployStatus.RUNNING:
        raise Cancelled(f"stopped: the deploy was marked {status} meanwhile, {where}")
    raise Cancelled(f"cancelled by {who or 'someone'} {where}")
