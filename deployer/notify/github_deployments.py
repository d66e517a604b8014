"""Every Gantry deploy, published as a GitHub deployment of its exact sha, with
a status for each state it reaches, so GitHub's commit and pull-request pages
show where code runs.

Workers call `deployment_publish` after each state change; it is safe to run
twice or out of order: it always sends the deploy's *current* state, and only
one run at a time may talk to GitHub about a deploy (claimed with a conditional
update), so GitHub never sees an older state after a newer one. The creator
first looks for a deployment made earlier whose answer was lost. A claim older
than CLAIM_SECONDS (its worker died mid-request) may be taken over.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from deployer.choices import DeployStatus
from deployer.integrations import github
from deployer.models import Deploy, DeployLog

GITHUB_STATES = {
    DeployStatus.QUEUED: "queued",
    DeployStatus.RUNNING: "in_progress",
    DeployStatus.SUCCEEDED: "success",
    DeployStatus.FAILED: "failure",
    DeployStatus.CANCELLED: "inactive",
    DeployStatus.ROLLED_BACK: "failure",
    DeployStatus.INTERRUPTED: "error",
    DeployStatus.TESTS_FAILED: "failure",
    DeployStatus.AWAITING_APPROVAL: "pending",
}
CREATING = "creating"
SENDING = "sending"
CLAIM_SECONDS = 120  # longer than any GitHub request may take (timeouts and retries included)


class PublishLater(Exception):
    """Another run is creating the GitHub deployment right now; try again shortly."""


def publishing_enabled(deploy: Deploy) -> bool:
    # A join ships no new release: GitHub's environment keeps the deployment that did.
    return (
        github.enabled()
        and settings.GITHUB_DEPLOYMENTS
        and bool(deploy.environment.service.github_repo)
        and not deploy.is_join
    )


def deployment_publish(*, deploy_id: int) -> None:
    deploy = Deploy.objects.select_related("environment__service").get(pk=deploy_id)
    if not publishing_enabled(deploy):
        return
    if deploy.github_deployment_id is None:
        _create(deploy)
    # Loop until what GitHub last heard is the deploy's state (a run that read an
    # older state sends the newer one after it).
    for _ in range(5):
        deploy.refresh_from_db(fields=["status", "github_state"])
        state = GITHUB_STATES[DeployStatus(deploy.status)]
        if deploy.github_state == state:
            return
        last = deploy.github_state
        if not _claim(deploy, last, SENDING):
            raise PublishLater(f"deploy #{deploy.pk}: another worker is sending its GitHub status")
        try:
            _send_status(deploy, state)
        except Exception:
            Deploy.objects.filter(pk=deploy.pk, github_state=SENDING).update(github_state=last)
            raise


def _claim(deploy: Deploy, expected: str, marker: str, **lookup: object) -> bool:
    """Take the deploy's GitHub conversation: from state `expected`, or from a claim whose worker went silent."""
    now = timezone.now()
    if expected in {CREATING, SENDING}:
        expected = "-"  # someone holds it: only a stale claim may be taken over
    stale = Q(github_state__in=[CREATING, SENDING], github_claimed_at__lt=now - timedelta(seconds=CLAIM_SECONDS))
    rows = Deploy.objects.filter(pk=deploy.pk, **lookup).filter(Q(github_state=expected) | stale)
    return bool(rows.update(github_state=marker, github_claimed_at=now))


def _create(deploy: Deploy) -> None:
    if not _claim(deploy, "", CREATING, github_deployment_id__isnull=True):
        deploy.refresh_from_db(fields=["github_deployment_id", "github_state"])
        if deploy.github_deployment_id is None:
            raise PublishLater(f"deploy #{deploy.pk}: another worker is creating its GitHub deployment")
        return
    service, environment = deploy.environment.service, deploy.environment
    try:
        deployment_id = github.deployment_find(
            service.github_repo, sha=deploy.sha, environment=environment.name, deploy_id=deploy.pk
        )
        if deployment_id is None:
            deployment_id = github.deployment_create(
                service.github_repo,
                sha=deploy.sha,
                environment=environment.name,
                deploy_id=deploy.pk,
                description=f"Gantry deploy #{deploy.pk} of {deploy.ref}",
                production=environment.production,
            )
    except Exception:
        Deploy.objects.filter(pk=deploy.pk, github_state=CREATING).update(github_state="")
        raise
    Deploy.objects.filter(pk=deploy.pk).update(github_deployment_id=deployment_id, github_state="created")
    deploy.github_deployment_id = deployment_id
    _audit(deploy, f"GitHub deployment {deployment_id} created for {deploy.sha[:8]} in {environment.name}")


def _send_status(deploy: Deploy, state: str) -> None:
    assert deploy.github_deployment_id is not None
    github.deployment_status_create(
        deploy.environment.service.github_repo,
        deploy.github_deployment_id,
        state=state,
        log_url=settings.GANTRY_BASE_URL + reverse("deploy", args=[deploy.pk]),
        description=(deploy.reason or f"Gantry deploy #{deploy.pk}: {deploy.status}")[:140],
        environment=deploy.environment.name,
    )
    Deploy.objects.filter(pk=deploy.pk).update(github_state=state)
    deploy.github_state = state
    _audit(deploy, f"GitHub deployment status: {state}")


def _audit(deploy: Deploy, message: str) -> None:
    DeployLog.objects.create(deploy=deploy, at=timezone.now(), host="", level="info", message=message)
