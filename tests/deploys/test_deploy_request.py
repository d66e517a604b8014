"""The rules of asking for a deploy: pin the sha, one active deploy per environment."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse

from deployer.catalog.load import CatalogError, catalog_apply, catalog_parse
from deployer.choices import DeployStatus
from deployer.deploys.plan import Check, deploy_plan
from deployer.deploys.request import deploy_request, rollback_candidates
from deployer.errors import DeployConflict, DeployRefused
from deployer.models import Branch, Deploy, Environment

CaptureOnCommit = Callable[..., AbstractContextManager[list[Callable[[], None]]]]


def test_it_pins_the_branch_head_and_queues_the_job_after_commit(
    environment: Environment, deployer: AbstractBaseUser, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        deploy = deploy_request(environment=environment, ref="feature/x", user=deployer)

    assert (deploy.status, deploy.ref, deploy.sha) == (DeployStatus.QUEUED, "feature/x", "b" * 40)
    assert deploy.requested_by == deployer
    assert len(callbacks) == 1, "the job is enqueued once, after the row is committed"
    # The branch moving later does not change what this deploy ships.
    Branch.objects.filter(name="feature/x").update(sha="c" * 40)
    deploy.refresh_from_db()
    assert deploy.sha == "b" * 40


def test_it_records_the_sha_of_the_last_good_deploy_as_previous(
    environment: Environment, deployer: AbstractBaseUser
) -> None:
    Deploy.objects.create(environment=environment, ref="main", sha="a" * 40, status=DeployStatus.SUCCEEDED)
    Deploy.objects.create(environment=environment, ref="feature/x", sha="b" * 40, status=DeployStatus.FAILED)

    deploy = deploy_request(environment=environment, ref="feature/x", user=deployer)

    assert deploy.previous_sha == "a" * 40


def test_it_refuses_a_second_active_deploy_naming_the_running_one(
    environment: Environment, deployer: AbstractBaseUser
) -> None:
    first = deploy_request(environment=environment, ref="main", user=deployer)

    with pytest.raises(DeployConflict) as caught:
        deploy_request(environment=environment, ref="feature/x", user=deployer)

    assert caught.value.running == first
    assert f"deploy #{first.pk} of main" in str(caught.value) and "started by dana" in str(caught.value)
    assert Deploy.objects.count() == 1


def test_the_database_itself_refuses_two_active_deploys(environment: Environment) -> None:
    Deploy.objects.create(environment=environment, ref="main", sha="a" * 40, status=DeployStatus.RUNNING)

    with pytest.raises(IntegrityError), transaction.atomic():
        Deploy.objects.create(environment=environment, ref="main", sha="a" * 40, status=DeployStatus.QUEUED)


def test_a_finished_deploy_frees_the_environment(environment: Environment, deployer: AbstractBaseUser) -> None:
    first = deploy_request(environment=environment, ref="main", user=deployer)
    Deploy.objects.filter(pk=first.pk).update(status=DeployStatus.FAILED)

    assert deploy_request(environment=environment, ref="main", user=deployer).pk != first.pk


def test_the_page_answers_409_with_a_link_to_the_running_deploy(
    environment: Environment, deployer_client: Client, deployer: AbstractBaseUser
) -> None:
    first = deploy_request(environment=environment, ref="main", user=deployer)

    response = deployer_client.post(reverse("deploy-create", args=["app", "test"]), {"ref": "feature/x"})

    assert response.status_code == 409
    page = response.content.decode()
    assert f"deploy #{first.pk} of main" in page and "started by dana" in page
    assert reverse("deploy", args=[first.pk]) in page


def test_an_unknown_branch_is_refused(environment: Environment, deployer: AbstractBaseUser) -> None:
    with pytest.raises(DeployRefused, match=r"app has no branch 'nope'.*Refresh branches"):
        deploy_request(environment=environment, ref="nope", user=deployer)
    assert not Deploy.objects.exists()


def test_a_full_sha_is_deployed_as_given(environment: Environment, deployer: AbstractBaseUser) -> None:
    deploy = deploy_request(environment=environment, ref="d" * 40, user=deployer)
    assert deploy.sha == "d" * 40


def test_after_failed_api_tests_a_rollback_goes_to_the_release_before_and_never_to_a_failed_one(
    environment: Environment,
) -> None:
    def ran(sha: str, status: DeployStatus = DeployStatus.SUCCEEDED) -> Deploy:
        return Deploy.objects.create(environment=environment, ref="main", sha=sha * 40, status=status)

    older, good = ran("a"), ran("b")
    failed_earlier = ran("c", DeployStatus.TESTS_FAILED)
    ran("d", DeployStatus.FAILED)  # never went live
    ran("e", DeployStatus.TESTS_FAILED)  # what runs now

    assert [d.sha[0] for d in rollback_candidates(environment)] == ["b", "a"]
    assert failed_earlier not in rollback_candidates(environment) and good.pk > older.pk


PRODUCTION_CATALOG = """
services:
  shop:
    github: acme/shop
    environments:
      prod:
        deploy_path: /srv/shop
        require_green_build: false
        hosts: [{{address: app1.internal, roles: [web, worker]}}]
        roles:
          web: {{restart_command: x, health_check_url: "http://{{{{address}}}}:8080/healthz"}}
          worker: {{restart_command: y{worker}}}
"""


def _production(worker: str = "") -> Environment:
    catalog_apply(catalog_parse(PRODUCTION_CATALOG.format(worker=worker)))
    environment = Environment.objects.get(service__name="shop", name="prod")
    Branch.objects.update_or_create(service=environment.service, name="main", defaults={"sha": "a" * 40})
    return environment


def test_production_refuses_a_role_with_no_health_check_unless_the_catalog_says_none(
    db: None, admin_user: AbstractBaseUser
) -> None:
    environment = _production()
    with pytest.raises(DeployRefused) as refused:
        deploy_request(environment=environment, ref="main", user=admin_user)
    assert str(refused.value) == (
        "shop/prod is production and worker has no health check, so a release whose processes die at start would "
        "reach every host: add roles.worker.health_check_url or roles.worker.health_check_command in the catalog, "
        "or say roles.worker.health_check: none if it has none on purpose"
    )
    assert not Deploy.objects.exists(), "nothing recorded"

    environment = _production(worker=", health_check: none")
    deploy = deploy_request(environment=environment, ref="main", user=admin_user)
    assert deploy.status == DeployStatus.QUEUED


def test_the_plan_shows_a_role_with_no_health_check(db: None, admin_user: AbstractBaseUser) -> None:
    def check(environment: Environment) -> Check:
        plan = deploy_plan(environment=environment, ref="main", user=admin_user)
        return next(c for c in plan.checks if c.label == "health checks")

    refused = check(_production())
    assert not refused.ok and refused.blocking and "worker has no health check" in refused.detail
    meant = check(_production(worker=", health_check: none"))
    assert (
        meant.ok and meant.detail == "no health check on purpose: worker (a restart counts as healthy when it returns)"
    )


def test_a_health_check_and_health_check_none_contradict_each_other(db: None) -> None:
    with pytest.raises(CatalogError) as problems:
        catalog_parse(PRODUCTION_CATALOG.format(worker=", health_check: none, health_check_command: z"))
    assert "health_check: none says there is no health check, but" in str(problems.value)
