"""Deploy gates: whether a sha may go to an environment, and if not, why (said on the button)."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from deployer.choices import BuildResult
from deployer.errors import StepFailed
from deployer.models import Build, Environment
from deployer.sources.checks import Verdict


@dataclass(frozen=True)
class Gate:
    open: bool
    reason: str = ""


OPEN = Gate(True)


def build_trusted(environment: Environment, build: Build) -> bool:
    """Whether `build` came from a job and branch the environment's catalog entry trusts (trusted_builds)."""
    jobs, branches = environment.trusted_build_jobs or [], environment.trusted_build_branches or []
    if build.replayed and (jobs or branches):  # its pipeline came from a person's edit, not the repository
        return False
    return (not jobs or any(fnmatch.fnmatchcase(build.job, g) for g in jobs)) and (
        not branches or any(fnmatch.fnmatchcase(build.branch, g) for g in branches)
    )


def trusted_build(environment: Environment, sha: str) -> tuple[Build | None, list[Build]]:
    """The newest build of `sha` that counts in `environment`, and the newer ones that do not (to say why)."""
    passed: list[Build] = []
    for build in Build.objects.filter(service_id=environment.service_id, sha=sha).order_by("-started_at", "-number"):
        if build_trusted(environment, build):
            return build, passed
        passed.append(build)
    return None, passed


def shipped_build(environment: Environment, sha: str, *, what: str, runs_only: bool = False) -> Build | None:
    """build: jenkins or github: the newest successful build of `sha` that counts here (None when there is
    none); StepFailed (`what` ships...) naming the successful ones that do not count. `runs_only`: GitHub
    Actions runs (they know their run, whose artifacts are asked for)."""
    successful = Build.objects.filter(service_id=environment.service_id, sha=sha, result=BuildResult.SUCCESS)
    if runs_only:
        successful = successful.exclude(run_id=None)
    builds = list(successful.order_by("-started_at", "-number")[:50])
    build = next((b for b in builds if build_trusted(environment, b)), None)
    if build is None and builds:
        raise StepFailed(f"{what} ships what a trusted build made: {provenance(environment, builds)}")
    return build


def provenance(environment: Environment, untrusted: Sequence[Build]) -> str:
    """Why the builds of a sha that exist do not count here."""
    said = ", ".join(
        f"#{b.number} of {b.job} (branch {b.branch or 'unknown'}{', replayed with an edited pipeline' * b.replayed})"
        for b in untrusted[:3]
    )
    wanted = []
    if environment.trusted_build_jobs:
        wanted.append(f"jobs {', '.join(environment.trusted_build_jobs)}")
    if environment.trusted_build_branches:
        wanted.append(f"branches {', '.join(environment.trusted_build_branches)}")
    return (
        f"{environment.name} counts only builds of {' and '.join(wanted)} (trusted_builds in the catalog), "
        f"and Jenkins built it only as {said}"
    )


def deploy_gate(
    environment: Environment,
    sha: str,
    build: Build | None,
    untrusted: Sequence[Build] = (),
    *,
    checks: Verdict | None = None,
) -> Gate:
    """`build` is the newest build of `sha` that counts here (None if Jenkins has none); `untrusted`, newer
    builds of it from jobs or branches the environment does not trust. `checks`: the required GitHub checks
    of `sha` combined (sources/checks.py), which decide instead of the build when the catalog names some."""
    if not environment.require_green_build:
        return OPEN
    short = sha[:8]
    if checks is not None:
        if checks.state == "success":
            return OPEN
        return Gate(False, f"{environment.name} needs its required checks to pass on {short}; {checks.said}")
    if build is None and untrusted:
        return Gate(False, f"{environment.name} needs a green build of {short}; {provenance(environment, untrusted)}")
    if build is None:
        return Gate(False, f"{environment.name} needs a green build of {short}; Jenkins has no build of it")
    if build.result == BuildResult.RUNNING:
        return Gate(False, f"{environment.name} needs a green build of {short}; build #{build.number} is running")
    if build.result != BuildResult.SUCCESS:
        label = BuildResult(build.result).label
        return Gate(False, f"{environment.name} needs a green build of {short}; build #{build.number}: {label}")
    return OPEN


def shown_gate(environment: Environment, sha: str, build: Build | None, checks: Verdict | None = None) -> Gate:
    """The gate as a page shows it from the newest build of `sha` (no query per environment): one from a job
    or branch the environment does not trust shows closed; the click looks further (rules.py)."""
    untrusted = [build] if build is not None and not build_trusted(environment, build) else []
    return deploy_gate(environment, sha, None if untrusted else build, untrusted, checks=checks)
