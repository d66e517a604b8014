"""Whether a commit's required GitHub checks passed for an environment (ci: github with required_checks or
branch_protection), from what sources/checks.py last read: as GitHub combines them for a protected branch
(success, neutral and skipped pass; a running or missing one waits; a failure closes the gate).

A name proves nothing: anyone who may push can run a workflow of their own, post a check run with the
workflow token, or post a status, under any name. So an entry counts only
- from GitHub Actions: when its check suite is a workflow run the catalog counts (github_actions: workflows,
  events) of this very commit, and the environment trusts that run as a build (trusted_builds: jobs are
  workflow files, branches the branch it built);
- from another app in check_apps (or the app a protection rule names), or a status from an account in
  status_creators: when the commit headed a branch the environment trusts (trusted_builds: branches).
For each poster, its newest entry (highest id) decides; any counted poster's failure fails the check."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any

from deployer.deploys.gates import build_trusted
from deployer.models import Build, CommitChecks, Environment, Service
from deployer.sources.checks import Required, Verdict, checks_wanted, required_of

GITHUB_ACTIONS = "github-actions"
GITHUB_ACTIONS_APP_ID = 15368
_WORDS = {"success": "passed", "failure": "failed", "error": "errored", "in_progress": "running"}


def commit_verdict(environment: Environment, sha: str) -> Verdict | None:
    """`verdict` of `sha` in `environment` as last read (two queries; None when nothing is required)."""
    if not checks_wanted(environment.service):
        return None
    row = CommitChecks.objects.filter(service=environment.service, sha=sha).first()
    return verdict(environment.service, environment, row, _runs(environment.service, [row] if row else []))


def verdicts_of(
    service: Service, shas: set[str], environments: Iterable[Environment]
) -> tuple[dict[str, Verdict], dict[tuple[int, str], Verdict]]:
    """For a page: each sha's verdict before any environment's trust (its badge), and each (environment, sha)'s
    (its gate); two queries, none when nothing is required."""
    if not checks_wanted(service):
        return {}, {}
    rows = {row.sha: row for row in CommitChecks.objects.filter(service=service, sha__in=shas)}
    runs = _runs(service, rows.values())
    badges = {sha: found for sha in shas if (found := verdict(service, None, rows.get(sha), runs))}
    gates = {
        (env.pk, sha): found
        for env in environments
        for sha in shas
        if (found := verdict(service, env, rows.get(sha), runs))
    }
    return badges, gates


def _runs(service: Service, rows: Iterable[CommitChecks]) -> dict[int, Build]:
    suites = {c["suite_id"] for row in rows for c in row.contexts or [] if c.get("suite_id")}
    return {b.suite_id: b for b in Build.objects.filter(service=service, suite_id__in=suites) if b.suite_id}


def verdict(
    service: Service, environment: Environment | None, row: CommitChecks | None, runs: dict[int, Build]
) -> Verdict | None:
    """The required checks of `row`'s commit combined, as `environment` counts them (None: before any
    environment's trust, as a badge shows them); None when the catalog requires none."""
    required = required_of(service)
    if not required:
        if not checks_wanted(service):
            return None
        return Verdict(
            "pending",
            f"branch_protection: true, but {service.default_branch}'s protection rule requires no check Gantry "
            "can read (rulesets are not read): name the checks in required_checks",
        )
    if row is None or row.read_at is None:
        return Verdict(
            "pending",
            "GitHub's checks of it have not been read yet (Gantry reads them for branch and tag heads and what "
            "runs in an environment, and again when GitHub's check webhooks say they changed)",
        )
    results = [_result(service, environment, want, row, runs) for want in required]
    for state in ("failure", "pending"):
        if any(found == state for found, _ in results):
            return Verdict(state, "; ".join(said for found, said in results if found == state))
    return Verdict("success", "; ".join(said for _, said in results))


def _result(
    service: Service, environment: Environment | None, want: Required, row: CommitChecks, runs: dict[int, Build]
) -> tuple[str, str]:
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    refused = ""
    for context in row.contexts or []:
        if context.get("name") != want.name:
            continue
        if why := _why_not(service, environment, want, row, context, runs):
            refused = refused or why
            continue
        key = (str(context.get("kind")), str(context.get("by")))
        if key not in newest or int(context.get("id", 0)) > int(newest[key].get("id", 0)):
            newest[key] = context
    if not newest:
        return "pending", f"{want.name} {'not reported' if not refused else 'does not count: ' + refused}"
    states = {str(c.get("state")) for c in newest.values()}
    state = "failure" if "failure" in states else "pending" if "pending" in states else "success"
    word = ", ".join(
        f"{_WORDS.get(str(c.get('word')), c.get('word'))} ({c.get('by')})"
        for c in newest.values()
        if c.get("state") == state
    )
    return state, f"{want.name} {word}"


def _why_not(
    service: Service,
    environment: Environment | None,
    want: Required,
    row: CommitChecks,
    context: dict[str, Any],
    runs: dict[int, Build],
) -> str:
    """Why `context` does not count for `want` here ("" when it does)."""
    wanted = service.github_actions or {}
    by, kind = str(context.get("by") or "nobody"), context.get("kind")
    if want.app_id is not None:
        if kind != "check" or context.get("app_id") != want.app_id:
            return f"{by} posted it; the protection rule asks for app {want.app_id}"
    elif kind == "check" and by not in (wanted.get("check_apps") or []):
        return f"{by} posted it, an app not in check_apps"
    elif kind != "check" and by not in (wanted.get("status_creators") or []):
        return f"{by} posted it, an account not in status_creators"
    if kind == "check" and (by == GITHUB_ACTIONS or context.get("app_id") == GITHUB_ACTIONS_APP_ID):
        build = runs.get(context.get("suite_id") or 0)
        if build is None or build.sha != row.sha:
            return "a GitHub Actions job of a workflow run that does not count (github_actions: workflows, events)"
        if environment is not None and not build_trusted(environment, build):
            return f"from {build.job} #{build.number} (branch {build.branch or 'unknown'}), not trusted_builds here"
        return ""
    globs = environment.trusted_build_branches if environment is not None else []
    if environment is not None and globs and not any(fnmatch.fnmatchcase(b, g) for b in row.branches for g in globs):
        return f"{environment.name} counts it only on a commit that headed {', '.join(globs)} (trusted_builds)"
    return ""
