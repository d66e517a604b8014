"""GitHub as it answers at scale and beside other tools: deployments other tools made, paginated lists,
the secondary rate limit, branch names that need percent-encoding."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from deployer.catalog.load import catalog_apply, catalog_parse
from deployer.errors import SyncFailed
from deployer.integrations import github as gh
from deployer.models import Branch, IntegrationStatus, Service
from deployer.sources import integration_health
from deployer.sources.branches import branch_sync
from tests.fakes.github import FakeGitHub

pytestmark = pytest.mark.django_db


def service_on(full_name: str) -> Service:
    name = full_name.split("/")[1]
    catalog_apply(
        catalog_parse(
            f"services:\n  {name}:\n    github: {full_name}\n    environments:\n"
            f"      test: {{deploy_path: /srv/{name}, hosts: [{{address: 10.0.0.1}}]}}\n"
        )
    )
    return Service.objects.get(name=name)


def test_the_lookup_of_gantrys_deployment_skips_other_tools_and_reads_past_the_first_page(
    github: FakeGitHub,
) -> None:
    repo = github.add_repo("acme/app")
    sha = repo.branches["main"]
    ours = gh.deployment_create(
        "acme/app", sha=sha, environment="test", deploy_id=42, description="deploy #42", production=False
    )
    for n in range(150):  # newer, by a script: the list shows them first
        payload = "deployed by hand" if n % 2 else {"build": n}
        github.add_foreign_deployment("acme/app", sha=sha, environment="test", payload=payload)
    github.add_foreign_deployment("acme/app", sha=sha, environment="prod", payload={"gantry_deploy_id": 42})
    github.reset_counters()

    assert gh.deployment_find("acme/app", sha=sha, environment="test", deploy_id=42) == ours

    assert github.count("GET", "/deployments") == 2, "two pages of 100"
    assert gh.deployment_find("acme/app", sha=sha, environment="test", deploy_id=43) is None


def test_a_secondary_rate_limit_waits_retry_after_not_the_primary_reset(github: FakeGitHub) -> None:
    github.add_repo("acme/app", branches=3)
    service = service_on("acme/app")
    github.secondary_limit(requests=1, retry_after=30)

    with pytest.raises(SyncFailed, match="secondary rate limit"):
        branch_sync(service=service)

    paused = IntegrationStatus.objects.get(name="github").paused_until
    assert paused is not None
    assert timezone.now() + timedelta(seconds=25) < paused < timezone.now() + timedelta(seconds=35)
    assert github.rate_remaining == github.rate_limit, "the primary budget was never spent"
    IntegrationStatus.objects.filter(name="github").update(paused_until=None)  # as if 30 s passed
    assert branch_sync(service=service) == 3


def test_a_secondary_limit_without_retry_after_waits_a_minute_as_github_advises(github: FakeGitHub) -> None:
    github.add_repo("acme/app")
    service = service_on("acme/app")
    github.secondary_limit(requests=1, retry_after=None, status=429)

    with pytest.raises(SyncFailed):
        branch_sync(service=service)

    paused = IntegrationStatus.objects.get(name="github").paused_until
    assert timezone.now() + timedelta(seconds=55) < paused < timezone.now() + timedelta(seconds=65)
    assert integration_health.unavailable_reason(integration_health.GITHUB)


@pytest.mark.parametrize("name", ["release/1.0+build", "user@feature", "fonctionnalité/été"])
def test_branch_names_that_need_encoding_are_found(github: FakeGitHub, name: str) -> None:
    github.add_repo("acme/app")
    sha = github.commit("acme/app", name, "An awkward name")
    service = service_on("acme/app")

    head = gh.branch_head("acme/app", name)

    assert head is not None and head.sha == sha
    branch_sync(service=service)
    assert Branch.objects.get(service=service, name=name).sha == sha
