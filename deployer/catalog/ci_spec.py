"""The catalog's `ci:` and `github_actions:` keys (sources/builds.py reads them): where a service's builds come
from. `ci: jenkins` (the default) reads `jenkins_job`; `ci: github` reads the GitHub Actions workflow runs of
its `github:` repository, as builds of the workflow's file (so `trusted_builds: {jobs: [...]}` names workflow
files, and `branches:` the runs' branches)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from deployer.catalog.fields import Spec

WORKFLOW_PATH_RE = r"^\.github/workflows/[A-Za-z0-9._-]{1,100}\.ya?ml$"


RunEvent = Literal["push", "workflow_dispatch", "schedule", "merge_group", "release"]


class GithubActionsSpec(Spec):
    """Which GitHub Actions runs count as the service's builds (anyone with write access can run a workflow
    of their own on any branch, or post a status under any name: a build counts only from these)."""

    workflows: list[Annotated[str, StringConstraints(pattern=WORKFLOW_PATH_RE)]] = Field(
        default_factory=list,
        max_length=20,
        description="only these workflows' runs, e.g. [.github/workflows/ci.yml] (default: every workflow)",
    )
    events: list[RunEvent] = Field(
        default_factory=lambda: list[RunEvent](["push"]),
        min_length=1,
        description="only runs started by these events (default [push]: never a pull request's own workflow)",
    )
