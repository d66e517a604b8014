"""Deploy gates: whether a sha may go to an environment, and if not, why (said on the button)."""

from __future__ import annotations

from dataclasses import dataclass

from deployer.choices import BuildResult
from deployer.models import Build, Environment


@dataclass(frozen=True)
class Gate:
    open: bool
    reason: str = ""


OPEN = Gate(True)


def deploy_gate(environment: Environment, sha: str, build: Build | None) -> Gate:
    """`build` is the newest build of `sha` (None if Jenkins has none)."""
    if not environment.require_green_build:
        return OPEN
    short = sha[:8]
    if build is None:
        return Gate(False, f"{environment.name} needs a green build of {short}; Jenkins has no build of it")
    if build.result == BuildResult.RUNNING:
        return Gate(False, f"{environment.name} needs a green build of {short}; build #{build.number} is running")
    if build.result != BuildResult.SUCCESS:
        label = BuildResult(build.result).label
        return Gate(False, f"{environment.name} needs a green build of {short}; build #{build.number}: {label}")
    return OPEN
