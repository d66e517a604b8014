"""Rolling one release out over an environment's hosts, as docs/release-model.md tells it:

1. Stage all: every host is staged (upload, extract, build), in parallel, before any host is switched: a
   failed build leaves `current` untouched everywhere.
2. The release phase: release_command once, on the release host, before any switch.
3. For each batch (the environment's batch size), in parallel within it: drain, switch, restart, health
   check, undrain (activation.py). The next batch starts only when every host of this one is live; between
   two batches a cancel is honoured, with every host left on a complete release.
4. Post-release: post_release_command once, then the after_deploy hooks.

A join (hosts new in the environment get the release that runs there) stages and activates only them, and
runs nothing "once": the release ran its release phase and once hooks when it went live.

When a batch fails, recovery.py rolls back, stops or pauses for a person. The rollout returns how it ended
(endings.py); fleet.py owns every host's state, host_steps.py and activation.py say what runs on a host.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from django.utils import timezone

from deployer.choices import HostStatus, OnFailure
from deployer.deploys.activation import activation_commands
from deployer.deploys.analysis import analysis_of
from deployer.deploys.batches import batch_sizes, canary_first
from deployer.deploys.canary import batch_judged, budget_between_batches
from deployer.deploys.endings import Ended, Ending, failed
from deployer.deploys.fleet import Fleet, HostRun, commands_plan, connection_ensure, host_move
from deployer.deploys.host_steps import (
    build,
    check_kept,
    post_release,
    prune,
    release_phase,
    release_runs_here,
    stage,
)
from deployer.deploys.log import deploy_logger
from deployer.deploys.phase_hooks import HookFailed, hooks_for, hooks_of, hooks_run
from deployer.deploys.phases import phase
from deployer.deploys.recovery import (
    after_failure,
    batch_activate,
    cancel_check,
    cancelled_or_failed,
    on_failure_hooks,
    roll_back_switched,
)
from deployer.deploys.roles import default_release_host, environment_roles, serves_traffic
from deployer.errors import StepFailed
from deployer.models import Deploy, DeployPhase


def rollout(
    fleet: Fleet,
    archive: Path | None,
    *,
    config: bytes = b"",
    checksum: str = "",
    on_batch: Callable[[Deploy], None] = lambda _: None,
) -> Ended:
    """Install `archive` as release <deploy id> on every host of `fleet` (with `config` as its shared config
    file); for a rollback (archive None), switch every host back to the earlier release it still has. With
    `checksum`, `archive` was built once: each host checks it and builds nothing. `on_batch` hears of every
    batch that went live (the caller tells Slack). Returns how it ended; the on_failure hooks have run by
    then when it did not end live. A live ending's reason notes hosts skipped and hooks that failed
    without stopping it."""
    ended = _roll_out(fleet, archive, config, checksum, on_batch)
    on_failure_hooks(fleet, ended)
    return ended


def failed_before_rollout(fleet: Fleet, reason: str) -> Ended:
    """The artifact could not be made (its build failed, or its migrations were refused): nothing was staged."""
    ended = failed(reason)
    on_failure_hooks(fleet, ended)
    return ended


def _roll_out(
    fleet: Fleet, archive: Path | None, config: bytes, checksum: str, on_batch: Callable[[Deploy], None]
) -> Ended:
    deploy, environment = fleet.deploy, fleet.deploy.environment
    once = not deploy.is_join  # a join brings new hosts to a release that ran its once steps already
    release_run = _release_host(fleet)
    release_run.release_host = once
    _balancer_reconcile(fleet)
    if archive is not None and not checksum:
        where = "on every new host that lacks the release" if deploy.is_join else "on every host, in the new release"
        _announce(deploy, "build_command", environment.build_command, where)
    failure = fleet.each(lambda run: _stage_host(run, deploy, archive, config, checksum), "stage")
    if failure and (failure := _unreachable_left(fleet, failure)):
        return cancelled_or_failed(fleet, failure)
    if release_run.status == HostStatus.SKIPPED:
        release_run.release_host = False
        release_run = fleet.going[0]
        release_run.release_host = once
    if archive is not None and once and (failure := _release_phase(deploy, release_run)):
        return failed(failure)
    _announce_restarts(deploy, fleet.runs)
    if failure := _joining_kept_out(fleet):
        return failed(failure)
    if once and (failure := _once(deploy, release_run, "before_switch", f"releases/{deploy.release_name}")):
        return cancelled_or_failed(fleet, failure)
    going = fleet.going
    analysis = analysis_of(fleet) if archive is not None and once else None  # (not for a rollback, or a join)
    sizes = batch_sizes(len(going), environment.batch_size)
    if analysis:  # the first batch is the canary, judged before the next one starts
        sizes = canary_first(len(going), analysis.canary, environment.batch_size)
    done = 0
    for number, size in enumerate(sizes, start=1):
        batch = going[done : done + size]
        if ended := _between_batches(fleet, number):
            return ended
        label = f"batch {number} of {len(sizes)}: {', '.join(r.name for r in batch)}"
        deploy_logger(deploy.pk).info("%s", label)
        with phase(deploy, DeployPhase.Kind.BATCH, label):
            ended = batch_activate(fleet, batch)  # drain, switch, restart, health check, undrain
        if ended:
            return ended
        done += size
        on_batch(deploy)
        judged = analysis is not None and (number == 1 or analysis.every_batch)
        if judged and analysis and (ended := batch_judged(fleet, analysis, batch, going[done:], number)):
            return ended
    if not any(run.status == HostStatus.LIVE for run in fleet.runs):
        return failed(f"no host runs the new release: every one was skipped ({fleet.where()})")
    if once and (failure := _once(deploy, release_run, "after_switch", "current")):  # as a failed switch would
        return after_failure(fleet, failure, rolling_back=environment.on_failure != OnFailure.STOP)
    if archive is not None and once and (failure := _post_release(deploy, fleet, release_run)):
        return failed(failure)
    # A rollback deploy is a rollback to the people who wrote the hooks.
    final, outcome = ("after_deploy", "succeeded") if archive is not None else ("after_rollback", "rolled_back")
    live = [run for run in fleet.runs if run.status != HostStatus.SKIPPED]
    if failure := fleet.each(lambda r: _final_hooks(r, deploy, final, outcome), final, runs=live, hosts_fail=False):
        return failed(failure)
    return Ended(Ending.LIVE, _notes(fleet))


def _between_batches(fleet: Fleet, number: int) -> Ended | None:
    """Before each batch: whatever may end the rollout there: a cancel (or an admin ending the deploy), or,
    before a later batch, the service's error budget spent or burning (a person decides)."""
    return cancel_check(fleet) or (budget_between_batches(fleet) if number > 1 else None)


def _joining_kept_out(fleet: Fleet) -> str:
    """Hosts that run no release yet (new in the environment) get no traffic before theirs is healthy: out
    of rotation until their activation; "" or why that could not be done."""

    def keep_out(run: HostRun) -> None:
        if run.balancer is not None:
            run.balancer.keep_out(run.host.balancer_name, run.log)

    joining = [run for run in fleet.going if run.joining and run.balancer is not None]
    return fleet.each(keep_out, "keep out of rotation", runs=joining) if joining else ""


def _unreachable_left(fleet: Fleet, failure: str) -> str:
    """Staging failed on some hosts. When every one of them was unreachable and the catalog allows that many,
    go on without them (""); else the failure, saying how a person may deploy without a dead host."""
    environment = fleet.deploy.environment
    failed_runs = [run for run in fleet.runs if run.status in {HostStatus.FAILED, HostStatus.STOPPED}]
    dead = [run for run in failed_runs if run.unreachable]
    if not dead:
        return failure
    if fleet.deploy.is_join and len(dead) == len(failed_runs) and len(dead) < len(fleet.runs):
        fleet.leave_behind(dead, "unreachable: it joins at the next deploy once it answers")
        return ""
    if fleet.deploy.is_join:
        return (
            f"{failure}. It gets no traffic; once it answers, the next deploy brings it up (or drop it from the "
            "catalog)"
        )
    allowed = environment.unreachable_hosts
    once_build = any(hooks_of(fleet.deploy, phase, once=True) for phase in ("before_build", "after_build"))
    if once_build and any(run.release_host for run in dead):
        return f"{failure}; the release host runs the once build hooks, so it cannot be left behind"
    if len(dead) == len(failed_runs) and len(dead) <= allowed and len(dead) < len(fleet.runs):
        why = f"unreachable, left behind (the catalog allows {allowed} unreachable host{'s' if allowed > 1 else ''})"
        fleet.leave_behind(dead, why)
        deploy_logger(fleet.deploy.pk).warning("going on without %s: %s", ", ".join(r.name for r in dead), why)
        return ""
    names = ", ".join(run.name for run in dead)
    return (
        f"{failure}. To deploy without {names}: tick it under 'Deploy without some hosts' on the plan page and "
        f"say why, or let the catalog allow it (unreachable_hosts: {len(dead)} on environment {environment.name})"
    )


def _notes(fleet: Fleet) -> str:
    notes = [note for run in fleet.runs for note in run.notes]
    if unreachable := [run.name for run in fleet.runs if run.status == HostStatus.SKIPPED and run.unreachable]:
        notes.insert(0, f"succeeded without {', '.join(unreachable)} (unreachable; left behind)")
    if skipped := [run.name for run in fleet.runs if run.status == HostStatus.SKIPPED and not run.unreachable]:
        notes.insert(0, f"succeeded without {', '.join(skipped)} (skipped after failing)")
    if left_out := fleet.deploy.skipped_hosts:
        notes.insert(0, f"deployed without {', '.join(left_out)}, as asked: {fleet.deploy.skip_reason}")
    return "; ".join(notes)


def _balancer_reconcile(fleet: Fleet) -> None:
    """The load balancer's servers as the catalog says, before any host is drained: every host that serves
    traffic (those left out of this deploy too) in it, those that left the catalog out of rotation."""
    in_balancer = [run for run in fleet.runs if run.balancer is not None]
    if in_balancer and (balancer := in_balancer[0].balancer) is not None:
        roles = environment_roles(fleet.deploy.environment)
        names = [h.balancer_name for h in fleet.deploy.environment.hosts.all() if serves_traffic(h, roles)]
        # A join touches only its new hosts: a server someone drained by hand stays drained.
        ready_drained = not fleet.deploy.is_join
        balancer.reconcile(
            names, deploy_logger(fleet.deploy.pk), gone=fleet.left_the_catalog(), ready_drained=ready_drained
        )


def _stage_host(run: HostRun, deploy: Deploy, archive: Path | None, config: bytes, checksum: str) -> None:
    """Connect, hand the SSH layer the host's plan, then stage: unpack and link, the build hooks around
    build_command (or, for a rollback, check the earlier release is still there)."""
    planned = _commands(run, deploy, archive, checksum)
    connection_ensure(run)
    commands_plan(run, planned + deploy.is_join)
    if deploy.is_join and release_runs_here(run, deploy):
        said = f"release {deploy.release_name} runs here already: kept as it is, then restarted and checked"
        run.log.info("%s", said)
        host_move(run, HostStatus.STAGED, said, previous_release=run.previous_release)
        return
    if archive is None:
        check_kept(run, deploy)
        host_move(
            run, HostStatus.STAGED, f"release {deploy.release_name} is there", previous_release=run.previous_release
        )
        return
    before = bool(hooks_of(deploy, "before_build", once=None))
    with_build = not before and not checksum
    stage(run, deploy, archive, config, with_build=with_build, checksum=checksum)
    host_move(run, HostStatus.STAGED, "built" if with_build else "unpacked", previous_release=run.previous_release)
    release_dir = f"{run.path}/releases/{deploy.release_name}"
    if before:
        _host_hooks(run, deploy, "before_build", release_dir)
        if not checksum and deploy.environment.build_command.strip():
            build(run, deploy)
            host_move(run, HostStatus.STAGED, "built")
    _host_hooks(run, deploy, "after_build", release_dir)


def _commands(run: HostRun, deploy: Deploy, archive: Path | None, checksum: str) -> int:
    """How many commands the rollout runs on this host when all goes well (its plan for the SSH layer)."""
    environment = deploy.environment
    if archive is None:
        return 1 + activation_commands(run, deploy) + _hooks_here(run, deploy, "after_rollback")
    before = _hooks_here(run, deploy, "before_build")
    build_apart = bool(before and not checksum and environment.build_command.strip())
    once = run.release_host and bool(environment.release_command.strip()) + bool(
        environment.post_release_command.strip()
    )
    staging = 1 + before + build_apart + _hooks_here(run, deploy, "after_build")
    return staging + int(once) + activation_commands(run, deploy) + _hooks_here(run, deploy, "after_deploy")


def _hooks_here(run: HostRun, deploy: Deploy, phase: str) -> int:
    return len(hooks_for(run, deploy, phase)) + (len(hooks_of(deploy, phase, once=True)) if run.release_host else 0)


def _host_hooks(run: HostRun, deploy: Deploy, phase: str, cwd: str, outcome: str = "") -> None:
    """The phase's per-host hooks, and on the release host its once hooks too."""
    hooks_run(run, deploy, phase, cwd, outcome=outcome)
    if run.release_host:
        hooks_run(run, deploy, phase, cwd, once=True, outcome=outcome)


def _final_hooks(run: HostRun, deploy: Deploy, phase: str, outcome: str) -> None:
    _host_hooks(run, deploy, phase, f"{run.path}/current", outcome)


def _once(deploy: Deploy, run: HostRun, phase: str, where: str) -> str:
    """The phase's once hooks, on the release host (between batches: before the first, after the last);
    "" unless one that stops the deploy failed."""
    if not hooks_of(deploy, phase, once=True):
        return ""
    try:
        hooks_run(run, deploy, phase, f"{run.path}/{where}", once=True)
    except HookFailed as exc:
        return str(exc)
    return ""


def _announce(deploy: Deploy, key: str, command: str, where: str) -> None:
    """The whole command, once per deploy (each host's log then shows only its output)."""
    if command.strip():
        deploy_logger(deploy.pk).info("%s (%s):\n%s", key, where, command.strip())


def _announce_restarts(deploy: Deploy, runs: list[HostRun]) -> None:
    for role in environment_roles(deploy.environment):
        hosts = [run.name for run in runs if role in run.roles]
        every = "every new host" if deploy.is_join else "every host"
        where = every if len(hosts) == len(runs) else ", ".join(hosts) or "no host"
        name = "restart_command" if role.name == "app" and not deploy.environment.roles else f"{role.name}: restart"
        _announce(deploy, name, role.restart_command, f"on {where}, in current, after the switch")


def _release_host(fleet: Fleet) -> HostRun:
    """The catalog's release_host, else the first host of the first role."""
    runs = fleet.runs
    if wanted := fleet.deploy.environment.release_host:
        return next((run for run in runs if run.host.address == wanted), runs[0])
    first = default_release_host([run.host for run in runs], environment_roles(fleet.deploy.environment))
    return next(run for run in runs if run.host == first)


def _release_phase(deploy: Deploy, run: HostRun) -> str:
    """release_command, once per deploy, on the release host, after every host is staged, before any switch;
    "" when it passed (or had run before), else why it failed.

    Claimed on the deploy row first: whatever redelivers or retries, it never runs twice for one deploy.
    """
    if not deploy.environment.release_command.strip():
        return ""
    log = deploy_logger(deploy.pk)
    claimed = Deploy.objects.filter(pk=deploy.pk, release_started_at__isnull=True).update(
        release_started_at=timezone.now(), release_ran_on=run.name
    )
    if not claimed:
        log.warning("the release phase of this deploy already began once; it never runs twice: not running it")
        return ""
    _announce(deploy, "release_command", deploy.environment.release_command, f"once, on {run.name}, before any switch")
    host_move(run, HostStatus.STAGED, "running the release phase")
    try:
        release_phase(run, deploy)
    except StepFailed as exc:
        host_move(run, HostStatus.FAILED, str(exc))
        return f"{exc}; no host was switched"
    host_move(run, HostStatus.STAGED, "release phase done")
    log.info("release phase done on %s", run.name)
    return ""


def _post_release(deploy: Deploy, fleet: Fleet, release_run: HostRun) -> str:
    """post_release_command once, on the release host (another live one when it was skipped); "" when it
    passed, else why it failed (every host runs the new release: nothing is rolled back)."""
    if not deploy.environment.post_release_command.strip():
        return ""
    live = [run for run in fleet.runs if run.status != HostStatus.SKIPPED]
    run = release_run if release_run in live else live[0]
    _announce(deploy, "post_release_command", deploy.environment.post_release_command, f"once, on {run.name}")
    # It may change the schema even when it fails: a rollback across this deploy asks for confirmation.
    Deploy.objects.filter(pk=deploy.pk).update(post_release_ran_at=timezone.now())
    try:
        post_release(run, deploy)
    except StepFailed as exc:
        return f"{exc}; every host runs the new release (nothing was rolled back)"
    return ""


def prune_all(deploy: Deploy) -> None:
    """After the deploy's end is recorded: old releases removed on every host at once (never delays the end;
    failures only warn)."""

    def one(run: HostRun) -> None:
        try:
            connection_ensure(run)
        except StepFailed as exc:  # the host's record stays as the deploy left it
            run.log.warning("could not remove old releases (the deploy is fine): %s", exc)
            return
        prune(run, deploy)

    with Fleet.switched_by(deploy).connected() as fleet:
        fleet.each(one, "prune", hosts_fail=False)


def roll_back_all(deploy: Deploy) -> Ended:
    """After a finished rollout (its post-deploy tests failed): every host back to its previous release (a
    host this deploy was the first on has none: it stays, and the reason says so)."""
    with Fleet.switched_by(deploy).connected() as fleet:
        back = [run for run in fleet.runs if run.previous_release]
        if failure := roll_back_switched(fleet, back):
            return Ended(Ending.ROLLBACK_FAILED, failure)
    stayed = [run.name for run in fleet.runs if not run.previous_release]
    said = f"; nothing to roll back to on {', '.join(stayed)} (its first deploy)" if stayed else ""
    return Ended(Ending.ROLLED_BACK, f"rolled back {', '.join(run.name for run in back) or 'no host'}{said}")
