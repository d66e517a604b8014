"""Deploy gates, promotion and continuous delivery, under the same rules as a person's deploy."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.urls import reverse

from deployer.catalog.load import catalog_apply, catalog_parse
from deployer.choices import DeployStatus, DeployTrigger
from deployer.delivery.continuous import continuous_delivery, drift_refresh
from deployer.demo.setup import repo_branch
from deployer.deploys.request import current_deploy, deploy_promote, deploy_request
from deployer.errors import DeployRefused
from deployer.models import Branch, Deploy, Environment, Service
from deployer.sources.branches import branch_sync
from deployer.sources.builds import build_sync
from tests.fakes.jenkins import FakeJenkins
from tests.support.catalogs import AppRepo

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("dana_deploys_to_prod")]


@pytest.fixture
def pipeline(app_repo: AppRepo, jenkins_server: FakeJenkins, tmp_path: Path) -> Service:
    """Service `web` from a real git repository, built by Jenkins job `web`: test, then prod (follows main)."""
    repo = tmp_path / "web"
    shutil.copytree(app_repo.path, repo)  # all its branches, and a work tree to commit in
    catalog_apply(
        catalog_parse(f"""
services:
  web:
    repo: {repo}
    jenkins_job: web
    environments:
      test: {{deploy_path: /srv/web, hosts: [{{address: 10.0.0.1}}]}}
      prod: {{deploy_path: /srv/web, follow: main, hosts: [{{address: 10.0.0.2}}]}}
""")
    )
    jenkins_server.add_job("web")
    service = Service.objects.get(name="web")
    branch_sync(service=service)
    return service


def env(service: Service, name: str) -> Environment:
    return service.environments.get(name=name)


def head(service: Service, branch: str = "main") -> str:
    return Branch.objects.get(service=service, name=branch).sha


def ran(environment: Environment, sha: str) -> Deploy:
    """Record that `sha` was deployed successfully (as the rollout would)."""
    return Deploy.objects.create(environment=environment, ref="main", sha=sha, status=DeployStatus.SUCCEEDED)


def green(jenkins_server: FakeJenkins, service: Service, sha: str, result: str | None = "SUCCESS") -> None:
    jenkins_server.build("web", "main", sha, result=result)
    build_sync(service=service)


def test_prod_needs_a_green_build_of_the_exact_sha(
    pipeline: Service, jenkins_server: FakeJenkins, deployer: AbstractBaseUser, deployer_client: Client
) -> None:
    prod = env(pipeline, "prod")
    assert prod.production and prod.require_green_build, "on by default for prod"
    assert not env(pipeline, "test").require_green_build

    with pytest.raises(DeployRefused, match=r"prod needs a green build of \w+; Jenkins has no build of it"):
        deploy_request(environment=prod, ref="main", user=deployer)
    page = deployer_client.get(reverse("service", args=["web"])).content.decode()
    assert re.search(r'disabled title="prod needs a green build[^"]*" data-environment="prod"', page)

    green(jenkins_server, pipeline, head(pipeline), result="FAILURE")
    with pytest.raises(DeployRefused, match=r"build #1: failure"):
        deploy_request(environment=prod, ref="main", user=deployer)

    green(jenkins_server, pipeline, head(pipeline))
    assert deploy_request(environment=prod, ref="main", user=deployer).status == DeployStatus.QUEUED


def test_prod_counts_only_builds_of_the_branches_and_jobs_the_catalog_names(
    pipeline: Service, jenkins_server: FakeJenkins, deployer: AbstractBaseUser
) -> None:
    """A pull request's build (or any job's) of the same sha opens no gate in production (issue 20, item 6)."""
    prod, sha = env(pipeline, "prod"), head(pipeline)
    assert (prod.trusted_build_branches, env(pipeline, "test").trusted_build_branches) == (["main"], [])
    jenkins_server.build("web", "PR-7", sha)  # green, but built as a pull request
    build_sync(service=pipeline)

    with pytest.raises(DeployRefused) as refused:
        deploy_request(environment=prod, ref="main", user=deployer)
    assert str(refused.value) == (
        f"prod needs a green build of {sha[:8]}; prod counts only builds of branches main (trusted_builds in the "
        "catalog), and Jenkins built it only as #1 of web (branch PR-7)"
    )

    jenkins_server.build("web", "main", sha, replayed=True)  # main, but its pipeline edited in Jenkins
    build_sync(service=pipeline)
    with pytest.raises(DeployRefused, match=r"#2 of web \(branch main, replayed with an edited pipeline\)"):
        deploy_request(environment=prod, ref="main", user=deployer)
    assert deploy_request(environment=env(pipeline, "test"), ref="main", user=deployer), "any build counts in test"

    green(jenkins_server, pipeline, sha)  # the same sha built from main
    assert deploy_request(environment=prod, ref="main", user=deployer).status == DeployStatus.QUEUED


def test_promote_deploys_exactly_what_runs_in_the_environment_before(
    pipeline: Service, jenkins_server: FakeJenkins, deployer_client: Client, app_repo: AppRepo
) -> None:
    shout = head(pipeline, "feature/shout")
    ran(env(pipeline, "test"), shout)
    green(jenkins_server, pipeline, shout)

    plan_url = reverse("deploy-plan", args=["web", "prod"]) + "?promote=1"
    asked = deployer_client.post(reverse("deploy-promote", args=["web", "prod"]))
    assert (asked.status_code, asked["Location"]) == (302, plan_url), "not deployed on one click: the plan asks first"
    assert not Deploy.objects.filter(environment__name="prod").exists()

    plan = deployer_client.get(plan_url).content.decode()
    assert "Promote test → prod: main" in plan and f"<code>{shout}</code>" in plan
    assert f'action="{reverse("deploy-promote", args=["web", "prod"])}"' in plan and "Promote now" in plan

    response = deployer_client.post(reverse("deploy-promote", args=["web", "prod"]), {"expected_sha": shout})

    deploy = Deploy.objects.get(environment__name="prod")
    assert response.status_code == 302
    assert (deploy.sha, deploy.ref, deploy.trigger) == (shout, "main", DeployTrigger.PROMOTE)


def test_a_promotion_whose_source_moved_since_its_plan_is_refused(
    pipeline: Service, jenkins_server: FakeJenkins, deployer_client: Client, app_repo: AppRepo
) -> None:
    shout = head(pipeline, "feature/shout")
    ran(env(pipeline, "test"), shout)
    green(jenkins_server, pipeline, shout)

    response = deployer_client.post(reverse("deploy-promote", args=["web", "prod"]), {"expected_sha": "f" * 40})

    assert response.status_code == 400, response.content
    assert "moved from ffffffff to" in response.content.decode() and "look at the new plan" in response.content.decode()
    assert not Deploy.objects.filter(environment__name="prod").exists()


def test_promote_refuses_when_there_is_nothing_new(pipeline: Service, deployer: AbstractBaseUser) -> None:
    with pytest.raises(DeployRefused, match="nothing runs in test yet"):
        deploy_promote(environment=env(pipeline, "prod"), user=deployer)
    ran(env(pipeline, "test"), head(pipeline))
    ran(env(pipeline, "prod"), head(pipeline))
    with pytest.raises(DeployRefused, match="already runs"):
        deploy_promote(environment=env(pipeline, "prod"), user=deployer)
    with pytest.raises(DeployRefused, match="first environment"):
        deploy_promote(environment=env(pipeline, "test"), user=deployer)


def test_a_release_whose_api_tests_failed_runs_but_is_not_promoted(
    pipeline: Service, deployer: AbstractBaseUser
) -> None:
    test = env(pipeline, "test")
    ran(test, head(pipeline))
    failed = Deploy.objects.create(environment=test, ref="main", sha="f" * 40, status=DeployStatus.TESTS_FAILED)
    assert current_deploy(test) == failed, "its release went live: it is what runs there"
    with pytest.raises(DeployRefused, match=rf"whose post-deploy API tests failed \(deploy #{failed.pk}\)"):
        deploy_promote(environment=env(pipeline, "prod"), user=deployer)


def test_continuous_delivery_deploys_the_green_head_as_gantry(pipeline: Service, jenkins_server: FakeJenkins) -> None:
    assert continuous_delivery(service=pipeline) == [], "no green build yet"
    green(jenkins_server, pipeline, head(pipeline))

    (deploy,) = continuous_delivery(service=pipeline)

    assert deploy.environment.name == "prod" and deploy.sha == head(pipeline)
    assert deploy.trigger == DeployTrigger.CONTINUOUS
    assert deploy.requested_by.get_username() == "gantry"
    assert not deploy.requested_by.has_usable_password()
    assert continuous_delivery(service=pipeline) == [], "one active deploy per environment"


def test_continuous_delivery_never_deploys_an_older_sha_over_a_newer_one(
    pipeline: Service, jenkins_server: FakeJenkins, app_repo: AppRepo
) -> None:
    old = head(pipeline)
    new = repo_branch(Path(pipeline.repo_url), "main", {"CHANGELOG": "newer\n"}, "A newer commit")
    ran(env(pipeline, "prod"), new)  # someone deployed the newer commit by hand
    green(jenkins_server, pipeline, old)  # the table still says main is at the old sha

    assert continuous_delivery(service=pipeline) == []

    branch_sync(service=pipeline)
    green(jenkins_server, pipeline, new)
    assert continuous_delivery(service=pipeline) == [], "already runs there"


def test_continuous_delivery_waits_for_a_running_deploy_and_does_not_retry_a_failure(
    pipeline: Service, jenkins_server: FakeJenkins, deployer: AbstractBaseUser
) -> None:
    green(jenkins_server, pipeline, head(pipeline, "feature/shout"))
    prod = env(pipeline, "prod")
    Deploy.objects.create(environment=prod, ref="x", sha="d" * 40, status=DeployStatus.RUNNING)
    green(jenkins_server, pipeline, head(pipeline))
    assert continuous_delivery(service=pipeline) == []

    Deploy.objects.filter(environment=prod).update(status=DeployStatus.FAILED)
    (deploy,) = continuous_delivery(service=pipeline)
    Deploy.objects.filter(pk=deploy.pk).update(status=DeployStatus.FAILED)
    assert continuous_delivery(service=pipeline) == [], "a failed automatic deploy waits for a person"


def test_drift_counts_the_commits_test_runs_ahead_of_prod(pipeline: Service) -> None:
    ran(env(pipeline, "prod"), head(pipeline))
    ran(env(pipeline, "test"), head(pipeline, "feature/shout"))

    drift_refresh(service=pipeline)

    assert env(pipeline, "test").ahead_of_next == 1
    assert env(pipeline, "prod").ahead_of_next is None
