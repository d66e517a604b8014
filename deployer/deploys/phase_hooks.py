"""Hooks: a person's commands at the phases of a deploy, on the hosts of a role or once on the release host.

    before_build    every host, in the new release, after unpacking and linking, before build_command
    after_build     every host, in the new release, after build_command
    before_switch   every host, in the new release, before its switch (once: before the first batch)
    after_switch    every host, in current, after its roles restarted healthy (once: after the last batch)
    after_deploy    every host, in current, when the deploy is done (after post_release_command)
    after_rollback  every host rolled back, in current (the earlier release)
    on_failure      every host, in the deploy path, when the deploy failed, rolled back or was cancelled

A failing before_* hook fails its step under the usual rules (a failed
before_build fails staging: nothing switches). A failing after_* hook is logged
and noted in the deploy's reason; it fails the deploy only where it says
`required: true`. after_rollback and on_failure never change the outcome. Each
hook is its own command on the host, bounded by its `timeout`, with the usual
variables plus GANTRY_ROLE, GANTRY_OUTCOME (and GANTRY_PREVIOUS_SHA, GANTRY_HOSTS,
which every command has).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deployer.choices import HOOKS_NEVER_REQUIRED
from deployer.deploys.fleet import HostRun
from deployer.deploys.host_steps import command_script, last_lines, remote
from deployer.errors import StepFailed
from deployer.models import Deploy

PHASES = (
    "before_build",
    "after_build",
    "before_switch",
    "after_switch",
    "after_deploy",
    "after_rollback",
    "on_failure",
)
# Phases whose failure never changes the outcome (the deploy has already gone one way).
NEVER_REQUIRED = {"after_rollback", "on_failure"}


@dataclass(frozen=True)
class Hook:
    phase: str
    command: str
    role: str
    once: bool
    required: bool
    timeout: int

    @property
    def stops_the_deploy(self) -> bool:
        return self.phase.startswith("before_") or (self.required and self.phase not in HOOKS_NEVER_REQUIRED)


def hooks_of(deploy: Deploy, phase: str, *, once: bool | None = None) -> list[Hook]:
    """The environment's hooks for `phase` in catalog order (only the once ones, or only the per-host ones)."""
    specs: list[dict[str, Any]] = (deploy.environment.hooks or {}).get(phase, [])
    hooks = [
        Hook(
            phase=phase,
            command=spec["command"],
            role=spec.get("role") or "",
            once=bool(spec.get("once")),
            required=bool(spec.get("required")),
            timeout=int(spec.get("timeout") or 120),
        )
        for spec in specs
    ]
    return [hook for hook in hooks if once is None or hook.once == once]


def hooks_for(run: HostRun, deploy: Deploy, phase: str, *, once: bool = False) -> list[Hook]:
    """The phase's hooks meant for this host: the per-host ones of its roles (or the once ones)."""
    roles = {role.name for role in run.roles}
    return [hook for hook in hooks_of(deploy, phase, once=once) if once or not hook.role or hook.role in roles]


class HookFailed(StepFailed):
    """A hook that stops the deploy failed."""


def hooks_run(
    run: HostRun, deploy: Deploy, phase: str, cwd: str, *, once: bool = False, outcome: str = ""
) -> list[str]:
    """Run the phase's hooks meant for this host (per-host ones for its roles, or the once ones), in order.

    Returns what failed without stopping the deploy (for its reason); HookFailed for one that stops it.
    """
    notes = []
    for hook in hooks_for(run, deploy, phase, once=once):
        failure = _hook_run(run, deploy, hook, cwd, outcome)
        if not failure:
            continue
        where = "once " if hook.once else ""
        text = f"{phase} hook {hook.command.splitlines()[0][:80]!r} failed {where}on {run.name}: {failure}"
        if hook.stops_the_deploy:
            raise HookFailed(text)
        run.log.warning("%s (not required: the deploy goes on)", text)
        notes.append(text)
    run.notes.extend(notes)
    return notes


def _hook_run(run: HostRun, deploy: Deploy, hook: Hook, cwd: str, outcome: str) -> str:
    """One hook on this host: "" when it exited 0, else how it failed and its last lines."""
    variables = {
        "GANTRY_ROLE": hook.role or " ".join(role.name for role in run.roles),
        "GANTRY_OUTCOME": outcome,
        "GANTRY_HOOK": hook.phase,
    }
    run.log.info("%s hook: %s", hook.phase, hook.command.strip())
    lines: list[str] = []
    script = command_script(run, deploy, cwd, hook.command, deploy.release_name, variables)
    try:
        # What runs after the outcome is decided is not stopped by a cancel's "stop now".
        remote(run, script, timeout=hook.timeout, lines=lines, stoppable=hook.phase not in HOOKS_NEVER_REQUIRED)
    except StepFailed as exc:
        return f"{exc}{last_lines(lines, 3)}"
    return ""
