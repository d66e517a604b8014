"""Keeping the Build table in step with each service's CI (one request per service): its Jenkins job, or with
`ci: github` its GitHub Actions workflow runs (conditional on the last answer's ETag: an unchanged repository
costs no rate-limit unit), each run a build of its workflow's file (job), numbered as GitHub numbers it.
A run counts only from the workflows and events the catalog names (github_actions:): anyone with write
access can run a workflow of their own on a branch, and a pull request's own workflow is its author's.
With required checks named, the same sync reads the heads' check runs and statuses (sources/checks.py)."""

from __future__ import annotations

import logging

from django.db import transaction

from deployer.choices import BuildResult, SyncSource
from deployer.errors import SyncFailed
from deployer.integrations import github, github_actions, jenkins
from deployer.lib import generations
from deployer.models import Branch, Build, Service
from deployer.sources import checks, integration_health
from deployer.sources.freshness import sync_failed, sync_state, sync_succeeded

logger = logging.getLogger(__name__)
UPDATABLE = ["branch", "sha", "result", "started_at", "duration_ms", "url", "replayed", "run_id", "suite_id"]
# Jenkins' words for how a build ended, in Gantry's vocabulary (anything else: not built).
_RESULTS = {
    "SUCCESS": BuildResult.SUCCESS,
    "FAILURE": BuildResult.FAILURE,
    "UNSTABLE": BuildResult.UNSTABLE,
    "ABORTED": BuildResult.ABORTED,
    "NOT_BUILT": BuildResult.NOT_BUILT,
    jenkins.RUNNING: BuildResult.RUNNING,
}


def build_result(word: str) -> BuildResult:
    return _RESULTS.get(word, BuildResult.NOT_BUILT)


def build_sync(*, service: Service) -> int:
    """Refresh `service`'s builds from its CI; return how many were new or changed.

    Failures are recorded on the service's SyncState and raised as SyncFailed;
    known builds stay as they were.
    """
    if service.ci == "github":
        return _actions_sync(service) if service.github_repo and github.enabled() else 0
    if not (service.jenkins_job and jenkins.enabled()):
        return 0
    state = sync_state(service, SyncSource.BUILDS)
    reason = integration_health.unavailable_reason(integration_health.JENKINS)
    try:
        if reason:
            raise SyncFailed(reason)
        try:
            found = jenkins.job_builds(service.jenkins_job)
        except jenkins.JenkinsError as exc:
            integration_health.record_failure(integration_health.JENKINS, str(exc), transient=exc.retryable, requests=1)
            raise SyncFailed(str(exc)) from exc
    except SyncFailed as exc:
        logger.warning("build sync of %s failed: %s", service.name, exc)
        sync_failed(state, str(exc))
        raise
    integration_health.record_success(integration_health.JENKINS, requests=1)
    changed = _apply(service, found)
    sync_succeeded(state)
    return changed


def _actions_sync(service: Service) -> int:
    state = sync_state(service, SyncSource.BUILDS)
    try:
        if reason := integration_health.unavailable_reason(integration_health.GITHUB):
            raise SyncFailed(reason)
        try:
            etag, runs = github_actions.workflow_runs(service.github_repo, etag=str(state.etags.get("runs", "")))
        except github.GitHubError as exc:
            integration_health.record_failure(integration_health.GITHUB, str(exc), transient=exc.retryable, requests=1)
            raise SyncFailed(str(exc)) from exc
    except SyncFailed as exc:
        logger.warning("build sync of %s failed: %s", service.name, exc)
        sync_failed(state, str(exc))
        raise
    integration_health.record_success(integration_health.GITHUB, requests=1, rate=github.rate_limit_seen())
    changed = runs_record(service, runs) if runs is not None else 0
    sync_succeeded(state, etags={"runs": etag})
    if checks.checks_wanted(service):
        _checks_sync(service)
    return changed


def _checks_sync(service: Service) -> None:
    """The required checks after the runs (a check run counts through its workflow run): failures recorded on
    their own sync state, then raised as SyncFailed like the runs'."""
    state = sync_state(service, SyncSource.CHECKS)
    try:
        etags, requests, refused = checks.checks_sync(service, state.etags)
    except github.GitHubError as exc:
        integration_health.record_failure(integration_health.GITHUB, str(exc), transient=exc.retryable, requests=1)
        logger.warning("checks sync of %s failed: %s", service.name, exc)
        sync_failed(state, str(exc))
        raise SyncFailed(str(exc)) from exc
    integration_health.record_success(integration_health.GITHUB, requests=requests, rate=github.rate_limit_seen())
    if refused:  # GitHub refused a commit or the protection rule; the others were read
        sync_failed(state, "; ".join(refused))
        state.etags = etags
        state.save(update_fields=["etags"])
    else:
        sync_succeeded(state, etags=etags)


def runs_record(service: Service, runs: list[github_actions.WorkflowRun]) -> int:
    """Record the runs the catalog counts (its workflows, its events) as builds; how many were new or changed.
    The workflow_run webhook calls this with the one run it carries.

    A run's branch is what GitHub calls its head_branch, and for a tag's run that is the tag's name: anyone
    who may push a tag named `main` would make their commit's run count as main's. So a run is recorded as
    of its branch only when it built that branch's head as Gantry knows it (or was recorded so before);
    otherwise with no branch, which no trusted_builds: {branches: [...]} accepts."""
    counted = [run for run in runs if run_counted(service, run)]
    heads = dict(
        Branch.objects.filter(service=service, name__in={r.branch for r in counted}).values_list("name", "sha")
    )
    known = set(
        Build.objects.filter(service=service, run_id__in=[r.id for r in counted]).values_list("run_id", "branch")
    )
    return _apply(
        service,
        [
            _as_build(run, run.branch if heads.get(run.branch) == run.sha or (run.id, run.branch) in known else "")
            for run in counted
        ],
    )


def run_counted(service: Service, run: github_actions.WorkflowRun) -> bool:
    """A run of a workflow and an event the catalog names (github_actions:; default: every workflow, push)."""
    wanted = service.github_actions or {}
    workflows, events = set(wanted.get("workflows") or []), set(wanted.get("events") or ["push"])
    return run.event in events and (not workflows or run.path in workflows)


def _as_build(run: github_actions.WorkflowRun, branch: str) -> jenkins.BuildInfo:
    took = run.updated_at - run.started_at if run.status == "completed" and run.started_at and run.updated_at else None
    return jenkins.BuildInfo(
        job=run.path,
        number=run.number,
        branch=branch,
        sha=run.sha,
        result=_ACTIONS.get(run.conclusion, "NOT_BUILT") if run.status == "completed" else jenkins.RUNNING,
        started_at=run.started_at,
        duration_ms=int(took.total_seconds() * 1000) if took else None,
        url=run.url,
        run_id=run.id,
        suite_id=run.suite_id,
    )


# GitHub Actions' conclusions in Jenkins' words (build_result reads those).
_ACTIONS = {
    "success": "SUCCESS",
    "failure": "FAILURE",
    "timed_out": "FAILURE",
    "startup_failure": "FAILURE",
    "cancelled": "ABORTED",
}


@transaction.atomic
def _apply(service: Service, found: list[jenkins.BuildInfo]) -> int:
    existing = {
        (b.job, b.number): b for b in Build.objects.filter(service=service, job__in={info.job for info in found})
    }
    creates, updates = [], []
    for info in found:
        values = {
            "branch": info.branch,
            "sha": info.sha,
            "result": build_result(info.result),
            "started_at": info.started_at,
            "duration_ms": info.duration_ms,
            "url": info.url,
            "replayed": info.replayed,
            "run_id": info.run_id,
            "suite_id": info.suite_id,
        }
        build = existing.get((info.job, info.number))
        if build is None:
            creates.append(Build(service=service, job=info.job, number=info.number, **values))
        elif any(getattr(build, key) != value for key, value in values.items()):
            for key, value in values.items():
                setattr(build, key, value)
            updates.append(build)
    Build.objects.bulk_create(creates)
    Build.objects.bulk_update(updates, UPDATABLE)
    if creates or updates:
        generations.bump(generations.SERVICES)
    return len(creates) + len(updates)
