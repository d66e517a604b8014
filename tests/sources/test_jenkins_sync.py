"""Builds from Jenkins: one request per service, plain and multibranch jobs, and failures marked stale."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from deployer.choices import BuildResult, SyncSource
from deployer.errors import SyncFailed
from deployer.models import Build, Environment, Service, SyncState
from deployer.sources.builds import build_sync
from tests.fakes.jenkins import MULTIBRANCH, PIPELINE, FakeJenkins

pytestmark = pytest.mark.django_db
SHA_A, SHA_B, SHA_C = "a" * 40, "b" * 40, "c" * 40


def uses_job(environment: Environment, job: str) -> Service:
    service = environment.service
    Service.objects.filter(pk=service.pk).update(jenkins_job=job)
    service.refresh_from_db()
    return service


def test_a_plain_job_is_read_in_one_request_with_the_branch_from_git_data(
    environment: Environment, jenkins_server: FakeJenkins
) -> None:
    jenkins_server.add_job("app")
    jenkins_server.build("app", "main", SHA_A)
    jenkins_server.build("app", "feature/x", SHA_B, result="FAILURE")
    jenkins_server.build("app", "feature/x", SHA_C, result=None)
    service = uses_job(environment, "app")

    assert build_sync(service=service) == 3

    assert jenkins_server.count() == 1
    builds = {b.sha: b for b in Build.objects.filter(service=service)}
    assert (builds[SHA_A].branch, builds[SHA_A].result, builds[SHA_A].number) == ("main", BuildResult.SUCCESS, 1)
    assert builds[SHA_A].duration_ms == 42_000 and builds[SHA_A].url.endswith("/job/app/1/")
    assert builds[SHA_B].result == BuildResult.FAILURE
    assert (builds[SHA_C].result, builds[SHA_C].duration_ms) == (BuildResult.RUNNING, None)


def test_a_multibranch_pipeline_with_slashed_branch_names(
    environment: Environment, jenkins_server: FakeJenkins
) -> None:
    jenkins_server.add_job("team/app", MULTIBRANCH)
    jenkins_server.build("team/app", "feature/login-form", SHA_A)
    jenkins_server.build("team/app", "main", SHA_B, result="UNSTABLE")
    service = uses_job(environment, "team/app")

    build_sync(service=service)

    assert jenkins_server.count() == 1, "one tree= query covers every branch"
    build = Build.objects.get(service=service, sha=SHA_A)
    assert build.branch == "feature/login-form"
    assert build.job == "team/app/feature%2Flogin-form"
    assert "/job/team/job/app/job/feature%252Flogin-form/1/" in build.url
    assert Build.objects.get(service=service, sha=SHA_B).result == BuildResult.UNSTABLE


def test_a_finished_build_updates_in_place(environment: Environment, jenkins_server: FakeJenkins) -> None:
    jenkins_server.add_job("app", PIPELINE)
    number = jenkins_server.build("app", "main", SHA_A, result=None)
    service = uses_job(environment, "app")
    build_sync(service=service)
    jenkins_server.finish("app", "main", number, "ABORTED")

    assert build_sync(service=service) == 1

    assert Build.objects.get(service=service).result == BuildResult.ABORTED
    assert build_sync(service=service) == 0, "nothing changed, nothing written"


def test_the_service_page_shows_each_shas_build_or_none(
    environment: Environment, jenkins_server: FakeJenkins, deployer_client: Client
) -> None:
    jenkins_server.add_job("app")
    jenkins_server.build("app", "main", SHA_A, result="FAILURE")  # main's head is "a" * 40
    build_sync(service=uses_job(environment, "app"))

    page = deployer_client.get(reverse("service", args=["app"])).content.decode()

    main_row = page[page.index('data-branch="main"') : page.index('data-branch="feature/x"')]
    assert 'data-build="failure"' in main_row and "#1 failure" in main_row
    feature_row = page[page.index('data-branch="feature/x"') :]
    assert 'data-build="none"' in feature_row.split("</tr>")[0], "feature/x's sha has no build"
    assert re.search(r"builds updated <time [^>]*>0 s ago</time>", page)


@pytest.mark.parametrize(("fault", "message"), [({"status": 500}, "Jenkins"), ({"hang": 4}, "did not answer")])
def test_jenkins_down_or_hanging_marks_builds_stale_and_keeps_them(
    environment: Environment, jenkins_server: FakeJenkins, settings: object, fault: dict, message: str
) -> None:
    settings.JENKINS_TIMEOUT = 1  # type: ignore[attr-defined]
    jenkins_server.add_job("app")
    jenkins_server.build("app", "main", SHA_A)
    service = uses_job(environment, "app")
    build_sync(service=service)
    jenkins_server.fail("/job/app/", **fault)

    with pytest.raises(SyncFailed, match=message):
        build_sync(service=service)

    assert Build.objects.filter(service=service).count() == 1
    assert message in SyncState.objects.get(service=service, source=SyncSource.BUILDS).error


def test_an_unknown_job_says_to_check_the_catalog(environment: Environment, jenkins_server: FakeJenkins) -> None:
    with pytest.raises(SyncFailed, match="Jenkins has no job 'nope'; check jenkins_job in the catalog"):
        build_sync(service=uses_job(environment, "nope"))
