"""Every deploy shows on GitHub as a deployment of its exact sha, with statuses as it progresses."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client

from deployer.choices import DeployStatus
from deployer.demo.setup import git
from deployer.deploys.request import deploy_request
from deployer.models import Branch, Environment
from tests.fakes.github import FakeGitHub, push_event
from tests.support.catalogs import AppRepo, MakeEnvironment
from tests.support.waiting import wait_for_deploy, wait_until
from tests.support.webhooks import post
from tests.support.worker import Worker

pytestmark = pytest.mark.slow


def on_github(github: FakeGitHub, app_repo: AppRepo) -> None:
    """acme/app on the fake GitHub, its branches pointing at the real repository's commits."""
    github.add_repo("acme/app")
    for name in ("main", "feature/shout"):
        sha = git(app_repo.path, "rev-parse", name).strip()
        github.push_existing("acme/app", name, sha, f"tip of {name}")


@pytest.fixture
def on_github_env(
    github: FakeGitHub, app_repo: AppRepo, make_environment: MakeEnvironment, ssh_hosts: list
) -> Environment:
    """Service app on one real host, its repository also on the fake GitHub as acme/app."""
    on_github(github, app_repo)
    return make_environment(hosts=ssh_hosts[:1], github_repo="acme/app")


def deployments_of(github: FakeGitHub, deploy_id: int) -> list[dict]:
    """The deployments made for this test's deploy: the session's worker may still be publishing an earlier
    test's deploy, whose late POST then lands on this test's acme/app (seen once in a full run)."""
    return [d for d in github.repos["acme/app"].deployments if d["payload"] == {"gantry_deploy_id": deploy_id}]


def statuses(github: FakeGitHub, deploy_id: int) -> list[str]:
    repo = github.repos["acme/app"]
    return [s["state"] for d in deployments_of(github, deploy_id) for s in repo.statuses[d["id"]]]


def creations(github: FakeGitHub, deploy_id: int) -> int:
    """How many times Gantry asked GitHub to create a deployment for `deploy_id`."""
    posts = [r for r in github.requests if r.method == "POST" and r.path.endswith("/deployments")]
    return sum(1 for r in posts if r.json().get("payload") == {"gantry_deploy_id": deploy_id})


def test_a_deploy_is_published_as_a_github_deployment_with_statuses(
    github: FakeGitHub, on_github_env: Environment, celery_worker: Worker, deployer: AbstractBaseUser
) -> None:

    deploy = wait_for_deploy(deploy_request(environment=on_github_env, ref="main", user=deployer).pk, celery_worker)
    assert deploy.status == DeployStatus.SUCCEEDED, deploy.reason
    wait_until(lambda: statuses(github, deploy.pk)[-1:] == ["success"])

    (deployment,) = deployments_of(github, deploy.pk)
    assert (deployment["sha"], deployment["environment"]) == (deploy.sha, "test")
    assert deployment["payload"] == {"gantry_deploy_id": deploy.pk}
    assert deployment["production_environment"] is False
    assert statuses(github, deploy.pk) in (["in_progress", "success"], ["success"]), "\n".join(
        map(str, deploy.log_lines.all())
    )
    status = github.repos["acme/app"].statuses[deployment["id"]][-1]
    assert status["target_url"] == f"{settings.GANTRY_BASE_URL}/deploys/{deploy.pk}/"
    assert creations(github, deploy.pk) == 1
    assert deploy.log_lines.filter(message__startswith="GitHub deployment").exists(), "every attempt is on record"


def test_a_lost_answer_to_the_deployment_post_is_never_sent_twice(
    github: FakeGitHub, on_github_env: Environment, celery_worker: Worker, deployer: AbstractBaseUser
) -> None:
    # GitHub creates the deployment, but the answer is lost (a 502 reaches Gantry).
    github.fail(r"/deployments$", method="POST", status=502, after=True, times=1)

    deploy = wait_for_deploy(deploy_request(environment=on_github_env, ref="main", user=deployer).pk, celery_worker)
    wait_until(lambda: statuses(github, deploy.pk)[-1:] == ["success"], timeout=40)

    assert len(deployments_of(github, deploy.pk)) == 1, "found again, not created twice"
    assert creations(github, deploy.pk) == 1, "the POST was not retried"
    assert deploy.status == DeployStatus.SUCCEEDED, "GitHub's trouble never touches the deploy"


def test_a_push_webhook_is_applied_by_the_worker(
    github: FakeGitHub, on_github_env: Environment, celery_worker: Worker, client: Client
) -> None:
    environment = on_github_env
    before = github.repos["acme/app"].branches["main"]
    sha = github.commit("acme/app", "main", "Pushed just now")

    assert post(client, "push", push_event(github, "acme/app", "main", before)).status_code == 202

    wait_until(lambda: Branch.objects.get(service=environment.service, name="main").sha == sha)
    assert Branch.objects.get(service=environment.service, name="main").message == "Pushed just now"
