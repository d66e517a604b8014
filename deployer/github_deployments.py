"""Every Gantry deploy, published as a GitHub deployment of its exact sha, with
a status for each state it reaches, so GitHub's commit and pull-request pages
show where code runs.

Workers call `deployment_publish` after each state change; it is safe to run
twice or out of order: it always sends the deploy's *current* state, and only
one run may create the GitHub deployment (claimed with a conditional update),
after looking for one made earlier whose answer was lost.
"""

from __future__ import annotations

from django.conf import settings
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
}
CREATING = "creating"


class PublishLater(Exception):
    """Another run is creating the GitHub deployment right now; try again shortly."""


def publishing_enabled(deploy: Deploy) -> bool:
    return github.enabled() and settings.GITHUB_DEPLOYMENTS and bool(deploy.environment.service.github_repo)


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
        _send_status(deploy, state)


def _create(deploy: Deploy) -> None:
    if not Deploy.objects.filter(pk=deploy.pk, github_deployment_id__isnull=True, github_state="").update(
        github_state=CREATING
    ):
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
