"""The catalog's `ci:` and `github_actions:` keys (sources/builds.py and sources/checks.py read them): where a
service's builds come from. `ci: jenkins` (the default) reads `jenkins_job`; `ci: github` reads the GitHub
Actions workflow runs of its `github:` repository, as builds of the workflow's file (so `trusted_builds:
{jobs: [...]}` names workflow files, and `branches:` the runs' branches). With `required_checks` (or
`branch_protection`), the build gate asks instead that the named check runs and commit statuses passed on the
exact sha, as GitHub combines them, counting only those posted by the named apps and accounts."""

from __future__ import annotations

from typing import Annotated, Literal, Protocol

from pydantic import Field, StringConstraints, model_validator

from deployer.catalog.fields import Spec

WORKFLOW_PATH_RE = r"^\.github/workflows/[A-Za-z0-9._-]{1,100}\.ya?ml$"


APP_SLUG_RE = r"^[a-z0-9][a-z0-9-]{0,99}$"
LOGIN_RE = r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}(\[bot\])?$"
CheckName = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")]

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
    required_checks: list[CheckName] = Field(
        default_factory=list,
        max_length=50,
        description=(
            "check runs or commit statuses (by name) that must have passed on the exact sha before an environment "
            "with require_green_build takes it, instead of a workflow run, e.g. [test, 'ci/circleci: build']"
        ),
    )
    branch_protection: bool = Field(
        default=False,
        description=(
            "also require what the default branch's protection requires (read from GitHub: the token needs "
            "read access to the repository's administration settings)"
        ),
    )
    check_apps: list[Annotated[str, StringConstraints(pattern=APP_SLUG_RE)]] = Field(
        default_factory=lambda: ["github-actions"],
        max_length=20,
        description="a check run counts only from these GitHub Apps (their slugs; default [github-actions])",
    )
    status_creators: list[Annotated[str, StringConstraints(pattern=LOGIN_RE)]] = Field(
        default_factory=list,
        max_length=20,
        description=(
            "a commit status counts only when one of these GitHub accounts posted it (anyone with write access can "
            "post a status under any name; default: statuses do not count)"
        ),
    )

    @model_validator(mode="after")
    def _someone_may_post(self) -> GithubActionsSpec:
        if (self.required_checks or self.branch_protection) and not (self.check_apps or self.status_creators):
            raise ValueError(
                "required checks count only from check_apps or status_creators, and both are empty: "
                "name the GitHub App (e.g. github-actions) or the account that posts them"
            )
        return self


def ci_problems(service: ServiceCi) -> list[tuple[tuple[str, ...], str]]:
    """What is wrong with a service's ci:/github_actions: as a whole: (where under the service, what to do)."""
    if service.ci == "github" and not service.github:
        return [(("ci",), "ci: github reads GitHub Actions runs: set github: owner/name")]
    wanted = service.github_actions
    if service.ci != "github" and wanted and (wanted.required_checks or wanted.branch_protection):
        return [(("github_actions",), "required checks are read from GitHub: set ci: github (and github:)")]
    return []


class ServiceCi(Protocol):
    """What ci_problems reads of a service's entry (schema.ServiceSpec, which imports this module)."""

    @property
    def ci(self) -> str: ...
    @property
    def github(self) -> str | None: ...
    @property
    def github_actions(self) -> GithubActionsSpec | None: ...
