"""Keeping the Build table in step with each service's Jenkins job (one request per service)."""

from __future__ import annotations

import logging

from django.db import transaction

from deployer.choices import BuildResult, SyncSource
from deployer.errors import SyncFailed
from deployer.integrations import jenkins
from deployer.lib import generations
from deployer.models import Build, Service
from deployer.sources import integration_health
from deployer.sources.freshness import sync_failed, sync_state, sync_succeeded

logger = logging.getLogger(__name__)
UPDATABLE = ["branch", "sha", "result", "started_at", "duration_ms", "url", "replayed"]
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
    """Refresh `service`'s builds from Jenkins; return how many were new or changed.

    Failures are recorded on the service's SyncState and raised as SyncFailed;
    known builds stay as they were.
    """
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
