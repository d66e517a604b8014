"""Making a staged release live on one host: switch `current`, then restart each role and check its health.

The switch is a new symlink renamed over `current` (atomic), in the session of
the first role's restart when it has one (else a session of its own). Then
each of the host's roles in order: its restart_command (bounded by its
restart_timeout, the switch included when it shares the session), then
its health check (an URL until HTTP 200, or a command
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
from deployer.models import Deploy, DeployHost

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
    try:
        with _out_of_rotation(run):
            _switch_and_restart(run, deploy, run.previous_release, then="after_rollback")
    except StepFailed as exc:
        raise StepFailed(f"{exc}; {current_read_back(run)}") from exc
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
    """The switch, then each role; `then` is the phase whose hooks follow. The switch shares the first
    role's restart session when it has one (a session is most of what a step costs on a host)."""
    if not release.isdigit():
        raise StepFailed(f"{release!r} is not a release id; not switching to it")
    joined = bool(run.roles) and bool(run.roles[0].restart_command.strip())
    if not joined:
        more = bool(hooks_of(deploy, then)) or any(
            r.restart_command.strip() or r.health_check_command for r in run.roles
        )
        _switch(run, release, ahead=more)
    hooks_follow = bool(hooks_of(deploy, then)) or bool(hooks_of(deploy, "after_deploy"))
    for index, role in enumerate(run.roles):
        later = run.roles[index + 1 :]
        # A session opened ahead that no command takes still costs the host a login shell.
        follows = hooks_follow or bool(role.health_check_command)
        follows = follows or any(r.restart_command.strip() or r.health_check_command for r in later)
        _restart_role(run, deploy, role, release, switch_first=joined and index == 0, ahead=follows)


class _Switch:
    """The switch's script, and the mark it prints once `current` points at the release."""

    def __init__(self, run: HostRun, release: str, *, then: str = "") -> None:
        """`then`: what the log says once the switch is done (the restart sharing its session begins)."""
        self.run, self.release, self.seen, self.then = run, release, False, then
        temp = shlex.quote(f"current.new.{release}")
        target = shlex.quote(f"releases/{release}")
        # In a subshell under set -e, whatever the restart command that may follow runs under.
        self.script = (
            script_in(
                run.path, f"(set -e; rm -f -- {temp}; ln -s -- {target} {temp}; mv -T -- {temp} current) || exit 1\n"
            )
            # Read back, not assumed: the host table says what `current` really points at.
            + f'echo "{SWITCHED_MARK} $(readlink current)"\n'
        )

    def mark(self, line: str) -> bool:
        if self.seen or not line.startswith(f"{SWITCHED_MARK} "):
            return False
        self.seen = True
        read = line.removeprefix(f"{SWITCHED_MARK} ").strip()
        self.run.switched = self.release != self.run.previous_release
        current_record(self.run, read.removeprefix("releases/"))
        self.run.log.info("current -> %s", read)
        if self.then:
            self.run.log.info("%s", self.then)
        return True


def current_record(run: HostRun, release: str) -> None:
    """Record where the host's `current` points, as just read there ("" when it could not be read)."""
    DeployHost.objects.filter(pk=run.record.pk).update(current=release[:50])


def current_read_back(run: HostRun) -> str:
    """After a step that failed: where `current` points now, read on the host and recorded, as a sentence
    (or that it could not be read: then nobody may assume which release the host runs)."""
    try:
        lines = remote(run, script_in(run.path, "readlink current"), quiet=True, timeout=SWITCH_TIMEOUT, ahead=False)
    except StepFailed as exc:
        current_record(run, "?")  # unknown, said on the page: nobody may assume which release it runs
        return f"where current points could not be read ({exc}): check the host"
    read = (lines[-1] if lines else "").strip()[:100]
    current_record(run, read.removeprefix("releases/") or "?")
    return f"current -> {read or 'nothing'} on {run.name}"


def _switch(run: HostRun, release: str, *, ahead: bool) -> None:
    """Point `current` at releases/<release>: a new symlink renamed over the old one (`ahead`: a command
    follows on this host)."""
    switch = _Switch(run, release)
    remote(run, switch.script, on_mark=switch.mark, timeout=SWITCH_TIMEOUT, ahead=ahead)


def _restart_role(
    run: HostRun, deploy: Deploy, role: ProcessRole, release: str, *, switch_first: bool, ahead: bool
) -> None:
    """One role: its restart command (after the switch, in the same session, when `switch_first`), then
    its health check; the role's state kept for the deploy page. `ahead`: a command follows on the host."""
    label = "" if role.name == "app" and len(run.roles) == 1 else f"{role.name}: "
    variables = {"GANTRY_ROLE": role.name}
    if role.restart_command.strip():
        role_update(run, role.name, "restarting")
        lines: list[str] = []
        script = command_script(run, deploy, f"{run.path}/current", role.restart_command, release, variables)
        switch = _Switch(run, release, then=f"{label}restarting") if switch_first else None
        if switch is None:
            run.log.info("%srestarting", label)
        try:
            if switch is None:
                remote(run, script, timeout=role.restart_timeout, lines=lines, ahead=ahead)
            else:  # the switch's few file operations count against the restart's timeout (they take ms)
                both = switch.script + script
                remote(run, both, timeout=role.restart_timeout, lines=lines, on_mark=switch.mark, ahead=ahead)
        except StepFailed as exc:
            if switch is not None and not switch.seen:
                raise StepFailed(f"switching current failed: {exc}{last_lines(lines, 3)}") from exc
            role_update(run, role.name, "failed", f"restart failed: {exc}")
            raise StepFailed(f"{label}restart_command failed: {exc}{last_lines(lines, 3)}") from exc
    if not role.has_health_check:
        role_update(run, role.name, "restarted" if role.restart_command.strip() else "no restart", "no health check")
        return
    role_update(run, role.name, "checking health")
    try:
        if role.health_check_url:
            url = role.health_check_url.format(address=run.host.address)
            health_wait(url, timeout=role.health_check_timeout, log=run.log, label=label, healthy_for=role.healthy_for)
        if role.health_check_command:
            check = command_script(run, deploy, f"{run.path}/current", role.health_check_command, release, variables)
            health_command_wait(
                lambda seconds: _probe(run, check, seconds),
                what=f"{label}health_check_command",
                timeout=role.health_check_timeout,
                log=run.log,
                healthy_for=role.healthy_for,
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
