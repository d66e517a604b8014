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

from deployer.deploys.fleet import HostRun, current_record, role_record
from deployer.deploys.health import health_command_wait, health_wait
from deployer.deploys.host_steps import SWITCHED_MARK, command_script, last_lines, remote, script_in
from deployer.deploys.phase_hooks import hooks_for, hooks_run
from deployer.deploys.roles import ProcessRole
from deployer.errors import StepFailed
from deployer.models import Deploy

# The switch itself is a few file operations; its session gets this long.
SWITCH_TIMEOUT = 30


def activate(run: HostRun, deploy: Deploy) -> None:
    """Switch `current` to the new release, restart each role, and wait for each role's health check;
    the before_switch and after_switch hooks around it (the host out of rotation for all of it)."""
    with _out_of_rotation(run):
        hooks_run(run, deploy, "before_switch", f"{run.path}/releases/{deploy.release_name}")
        _switch_and_restart(run, deploy, deploy.release_name)
        hooks_run(run, deploy, "after_switch", f"{run.path}/current")


def activation_commands(run: HostRun, deploy: Deploy) -> int:
    """How many commands activate() runs on the host when all goes well (its plan for the SSH layer)."""
    roles = run.roles
    joined = bool(roles) and bool(roles[0].restart_command.strip())
    commands = sum(bool(r.restart_command.strip()) + bool(r.health_check_command) for r in roles)
    hooks = sum(len(hooks_for(run, deploy, phase)) for phase in ("before_switch", "after_switch"))
    return commands + (0 if joined else 1) + hooks


def roll_back(run: HostRun, deploy: Deploy) -> None:
    """Back to the release this host ran before the deploy; then its after_rollback hooks."""
    if not run.previous_release:
        raise StepFailed("there is no previous release to go back to (this was the first deploy)")
    try:
        with _out_of_rotation(run):
            _switch_and_restart(run, deploy, run.previous_release)
    except StepFailed as exc:
        raise StepFailed(f"{exc}; {current_read_back(run)}") from exc
    hooks_run(run, deploy, "after_rollback", f"{run.path}/current", outcome="rolled_back")


@contextmanager
def _out_of_rotation(run: HostRun) -> Iterator[None]:
    """Drained in the load balancer for the block, when the environment has one and the host serves traffic."""
    if run.balancer is None:
        yield
        return
    with run.balancer.drained(run.host.balancer_name, run.log, joining=run.joining):
        yield


def _switch_and_restart(run: HostRun, deploy: Deploy, release: str) -> None:
    """The switch, then each role. The switch shares the first role's restart session when it has one (a
    session is most of what a step costs on a host)."""
    if not release.isdigit():
        raise StepFailed(f"{release!r} is not a release id; not switching to it")
    joined = bool(run.roles) and bool(run.roles[0].restart_command.strip())
    if not joined:
        switch = _Switch(run, release)
        remote(run, switch.script, on_mark=switch.mark, timeout=SWITCH_TIMEOUT)
    for index, role in enumerate(run.roles):
        _restart_role(run, deploy, role, release, switch_first=joined and index == 0)


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
        current_record(self.run, read.removeprefix("releases/"))
        self.run.log.info("current -> %s", read)
        if self.then:
            self.run.log.info("%s", self.then)
        return True


def current_read_back(run: HostRun) -> str:
    """After a step that failed: where `current` points now, read on the host and recorded, as a sentence
    (or that it could not be read: then nobody may assume which release the host runs)."""
    try:
        lines = remote(run, script_in(run.path, "readlink current"), quiet=True, timeout=SWITCH_TIMEOUT)
    except StepFailed as exc:
        current_record(run, "?")  # unknown, said on the page: nobody may assume which release it runs
        return f"where current points could not be read ({exc}): check the host"
    read = (lines[-1] if lines else "").strip()[:100]
    current_record(run, read.removeprefix("releases/") or "?")
    return f"current -> {read or 'nothing'} on {run.name}"


def _restart_role(run: HostRun, deploy: Deploy, role: ProcessRole, release: str, *, switch_first: bool) -> None:
    """One role: its restart command (after the switch, in the same session, when `switch_first`), then
    its health check; the role's state kept for the deploy page."""
    label = "" if role.name == "app" and len(run.roles) == 1 else f"{role.name}: "
    variables = {"GANTRY_ROLE": role.name}
    if role.restart_command.strip():
        role_record(run, role.name, "restarting")
        lines: list[str] = []
        script = command_script(run, deploy, f"{run.path}/current", role.restart_command, release, variables)
        switch = _Switch(run, release, then=f"{label}restarting") if switch_first else None
        if switch is None:
            run.log.info("%srestarting", label)
        try:
            if switch is None:
                remote(run, script, timeout=role.restart_timeout, lines=lines)
            else:  # the switch's few file operations count against the restart's timeout (they take ms)
                both = switch.script + script
                remote(run, both, timeout=role.restart_timeout, lines=lines, on_mark=switch.mark)
        except StepFailed as exc:
            if switch is not None and not switch.seen:
                raise StepFailed(f"switching current failed: {exc}{last_lines(lines, 3)}") from exc
            role_record(run, role.name, "failed", f"restart failed: {exc}")
            raise StepFailed(f"{label}restart_command failed: {exc}{last_lines(lines, 3)}") from exc
    if not role.has_health_check:
        role_record(run, role.name, "restarted" if role.restart_command.strip() else "no restart", "no health check")
        return
    role_record(run, role.name, "checking health")
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
        role_record(run, role.name, "unhealthy", str(exc))
        raise
    role_record(run, role.name, "healthy")


def _probe(run: HostRun, script: str, seconds: float) -> str:
    """One run of a health command: "" when it exited 0, else how it failed and what it printed last."""
    lines: list[str] = []
    try:
        remote(run, script, quiet=True, timeout=max(1, math.ceil(seconds)), lines=lines)
    except StepFailed as exc:
        return f"{exc}{last_lines(lines, 2)}"
    return ""
