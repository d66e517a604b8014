"""Making a staged release live on one host: switch `current`, then restart each role and check its health.

The switch is one session (a new symlink renamed over `current`: atomic). Then
each of the host's roles in order: its restart_command (bounded by its
restart_timeout), then its health check (an URL until HTTP 200, or a command
run on the host until it exits 0). The host is out of the load balancer for the
whole of it when one of its roles serves traffic. A rollback is the same steps
towards the earlier release.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Iterator
from contextlib import contextmanager

from deployer.choices import HostStatus
from deployer.deploys.health import health_command_wait, health_wait
from deployer.deploys.host_steps import (
    SWITCHED_MARK,
    HostRun,
    command_script,
    host_update,
    last_lines,
    remote,
    role_update,
    script_in,
)
from deployer.deploys.phase_hooks import hooks_of, hooks_run
from deployer.deploys.roles import ProcessRole
from deployer.errors import StepFailed
from deployer.models import Deploy

# The switch itself is a few file operations; its session gets this long.
SWITCH_TIMEOUT = 30


def activate(run: HostRun, deploy: Deploy) -> None:
    """Switch `current` to the new release, restart each role, and wait for each role's health check;
    the before_switch and after_switch hooks around it (the host out of rotation for all of it)."""
    host_update(run, HostStatus.ACTIVATING, "switching, restarting, health check")
    with _out_of_rotation(run):
        hooks_run(run, deploy, "before_switch", f"{run.path}/releases/{deploy.release_name}")
        _switch_and_restart(run, deploy, deploy.release_name, then="after_switch")
        hooks_run(run, deploy, "after_switch", f"{run.path}/current")
    host_update(run, HostStatus.LIVE, "live")


def roll_back(run: HostRun, deploy: Deploy) -> None:
    """Back to the release this host ran before the deploy; then its after_rollback hooks."""
    if not run.previous_release:
        raise StepFailed("there is no previous release to go back to (this was the first deploy)")
    with _out_of_rotation(run):
        _switch_and_restart(run, deploy, run.previous_release, then="after_rollback")
    run.switched = False
    host_update(run, HostStatus.ROLLED_BACK, f"rolled back to release {run.previous_release}")
    hooks_run(run, deploy, "after_rollback", f"{run.path}/current", outcome="rolled_back")


@contextmanager
def _out_of_rotation(run: HostRun) -> Iterator[None]:
    """Drained in the load balancer for the block, when the environment has one and the host serves traffic."""
    if run.balancer is None:
        yield
        return
    with run.balancer.drained(run.host.balancer_name, run.log):
        yield


def _switch_and_restart(run: HostRun, deploy: Deploy, release: str, *, then: str) -> None:
    """The switch, then each role; `then` is the phase whose hooks follow."""
    if not release.isdigit():
        raise StepFailed(f"{release!r} is not a release id; not switching to it")
    more = bool(hooks_of(deploy, then)) or any(r.restart_command.strip() or r.health_check_command for r in run.roles)
    _switch(run, release, ahead=more)
    for role in run.roles:
        _restart_role(run, deploy, role, release)


def _switch(run: HostRun, release: str, *, ahead: bool) -> None:
    """Point `current` at releases/<release>: a new symlink renamed over the old one (`ahead`: a command
    follows on this host)."""
    temp = shlex.quote(f"current.new.{release}")
    script = script_in(
        run.path,
        f"set -e\nrm -f -- {temp}\nln -s -- {shlex.quote(f'releases/{release}')} {temp}\nmv -T -- {temp} current\n"
        f"echo {SWITCHED_MARK}\n",
    )
    seen = False

    def switched(line: str) -> bool:
        nonlocal seen
        if seen or line != SWITCHED_MARK:
            return False
        seen = True
        run.switched = release != run.previous_release
        run.log.info("current -> releases/%s", release)
        return True

    remote(run, script, on_mark=switched, timeout=SWITCH_TIMEOUT, ahead=ahead)


def _restart_role(run: HostRun, deploy: Deploy, role: ProcessRole, release: str) -> None:
    """One role: its restart command, then its health check; the role's state kept for the deploy page."""
    label = "" if role.name == "app" and len(run.roles) == 1 else f"{role.name}: "
    variables = {"GANTRY_ROLE": role.name}
    if role.restart_command.strip():
        role_update(run, role.name, "restarting")
        run.log.info("%srestarting", label)
        lines: list[str] = []
        script = command_script(run, deploy, f"{run.path}/current", role.restart_command, release, variables)
        try:
            remote(run, script, timeout=role.restart_timeout, lines=lines)
        except StepFailed as exc:
            role_update(run, role.name, "failed", f"restart failed: {exc}")
            raise StepFailed(f"{label}restart_command failed: {exc}{last_lines(lines, 3)}") from exc
    if not role.has_health_check:
        role_update(run, role.name, "restarted" if role.restart_command.strip() else "no restart", "no health check")
        return
    role_update(run, role.name, "checking health")
    try:
        if role.health_check_url:
            url = role.health_check_url.format(address=run.host.address)
            health_wait(url, timeout=role.health_check_timeout, log=run.log, label=label)
        if role.health_check_command:
            check = command_script(run, deploy, f"{run.path}/current", role.health_check_command, release, variables)
            health_command_wait(
                lambda seconds: _probe(run, check, seconds),
                what=f"{label}health_check_command",
                timeout=role.health_check_timeout,
                log=run.log,
            )
    except StepFailed as exc:
        role_update(run, role.name, "unhealthy", str(exc))
        raise
    role_update(run, role.name, "healthy")


def _probe(run: HostRun, script: str, seconds: float) -> str:
    """One run of a health command: "" when it exited 0, else how it failed and what it printed last."""
    lines: list[str] = []
    try:
        remote(run, script, quiet=True, timeout=max(1, math.ceil(seconds)), lines=lines)
    except StepFailed as exc:
        return f"{exc}{last_lines(lines, 2)}"
    return ""
