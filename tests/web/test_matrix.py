"""The services × environments matrix, the service page at scale, and the integrations page."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from deployer.catalog.load import catalog_apply, catalog_parse
from deployer.choices import BuildResult, DeployStatus, Role
from deployer.deploys.request import deploy_request
from deployer.models import Branch, Build, Deploy, Environment, Grant, IntegrationStatus, Service, Team

pytestmark = pytest.mark.django_db


def add_services(first: int, count: int, *, branches: int = 3) -> None:
    """Services s<first>..: test and prod, each running a deploy with a build; `branches` branches with builds."""
    body = "".join(
        f"  s{n:03d}:\n    team: {'red' if n % 2 else 'blue'}\n    repo: /srv/git/s{n}\n    jenkins_job: s{n}\n"
        f"    environments:\n"
        f"      test: {{deploy_path: /srv/s{n}, hosts: [{{address: 10.0.1.1}}]}}\n"
        f"      prod: {{deploy_path: /srv/s{n}, hosts: [{{address: 10.0.2.1}}]}}\n"
        for n in range(first, first + count)
    )
    catalog_apply(catalog_parse("teams:\n  red: {}\n  blue: {}\nservices:\n" + body))
    for service in Service.objects.filter(branches__isnull=True):
        for b in range(branches):
            sha = f"{service.pk:020d}{b:020d}"
            Branch.objects.create(service=service, name=f"feature/{b}", sha=sha, committed_at=timezone.now())
            Build.objects.create(
                service=service,
                job=service.jenkins_job,
                number=b + 1,
                sha=sha,
                result=BuildResult.SUCCESS,
                started_at=timezone.now(),
            )
    for environment in Environment.objects.filter(deploys__isnull=True):
        sha = f"{environment.service_id:020d}{0:020d}"
        Deploy.objects.create(environment=environment, ref="feature/0", sha=sha, status=DeployStatus.SUCCEEDED)


def queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_the_matrix_shows_what_runs_where_with_builds_drift_and_promote(
    deployer_client: Client, environment: Environment
) -> None:
    prod = Environment.objects.create(service=environment.service, name="prod", position=1, deploy_path="/srv/app")
    Deploy.objects.create(environment=environment, ref="feature/x", sha="b" * 40, status=DeployStatus.SUCCEEDED)
    Deploy.objects.create(environment=prod, ref="main", sha="a" * 40, status=DeployStatus.SUCCEEDED)
    Build.objects.create(service=environment.service, job="app", number=7, sha="b" * 40, result=BuildResult.SUCCESS)
    Environment.objects.filter(pk=environment.pk).update(ahead_of_next=3)

    page = deployer_client.get(reverse("services")).content.decode()

    assert "<th>test</th><th>prod</th>" in page
    assert "bbbbbbbb</code> feature/x" in page and "aaaaaaaa</code> main" in page
    assert ">success</span>" in page
    assert "3 ahead of prod" in page
    plan = reverse("deploy-plan", args=["app", "prod"]) + "?promote=1"
    assert f'href="{plan}">Promote from test…</a>' in page, "a promotion opens its plan page first"


def test_the_matrix_filters_by_team_and_name(deployer_client: Client, db: None) -> None:
    add_services(0, 6)
    by_team = deployer_client.get(reverse("services"), {"team": "red"}).content.decode()
    assert 'data-service="s001"' in by_team and 'data-service="s000"' not in by_team
    by_name = deployer_client.get(reverse("services"), {"q": "s00"}).content.decode()
    assert by_name.count('data-service="') == 6
    nothing = deployer_client.get(reverse("services"), {"q": "zzz"}).content.decode()
    assert "No service matches." in nothing


def test_the_services_list_costs_the_same_queries_for_5_and_60_services(deployer_client: Client, db: None) -> None:
    add_services(0, 5)
    few = queries(deployer_client, reverse("services"))
    add_services(5, 55)
    assert queries(deployer_client, reverse("services")) == few


def test_the_services_list_pages_with_the_persons_teams_first(
    deployer_client: Client, db: None, settings: object
) -> None:
    settings.SERVICES_PAGE_SIZE = 10  # type: ignore[attr-defined]
    add_services(0, 25)
    first = deployer_client.get(reverse("services")).content.decode()
    assert first.count('data-service="') == 10 and 'data-service="s000"' in first
    assert "Services 1–10 of 25." in first and "page=2" in first and "show=all" in first
    third = deployer_client.get(reverse("services"), {"page": 3}).content.decode()
    assert third.count('data-service="') == 5 and 'data-service="s024"' in third and "Next ›" not in third
    everything = deployer_client.get(reverse("services"), {"show": "all"}).content.decode()
    assert everything.count('data-service="') == 25 and "All 25 services." in everything
    past = deployer_client.get(reverse("services"), {"page": 9, "team": "red"}).content.decode()
    assert "No services on this page" in past and "team=red&amp;page=1" in past, "back to the first, filter kept"
    red_team = deployer_client.get(reverse("services"), {"team": "red", "page": 2}).content.decode()
    assert "Services 11–12 of 12." in red_team and "team=red&amp;page=1" in red_team

    olga = get_user_model().objects.create_user("olga", password="x")
    Grant.objects.create(principal="olga", role=Role.DEPLOYER, team=Team.objects.get(name="red"))
    client = Client()
    client.force_login(olga)
    mine = client.get(reverse("services")).content.decode()
    assert "your teams' first" in mine
    assert [f'data-service="s{n:03d}"' in mine for n in (1, 19, 0)] == [True, True, False], "red (odd) first"


@pytest.mark.parametrize(
    "query, error",
    [({"page": "two"}, "page must be a number"), ({"page": "0"}, "page"), ({"show": "most"}, "?show=all")],
)
def test_bad_paging_is_a_400_that_says_how(deployer_client: Client, db: None, query: dict, error: str) -> None:
    response = deployer_client.get(reverse("services"), query)
    assert response.status_code == 400 and error in response.content.decode()
    assert "<h1>Services</h1>" in response.content.decode(), "the page, saying what is wrong"


def test_a_page_of_services_costs_the_same_queries_for_5_and_130_services(
    deployer_client: Client, db: None, settings: object
) -> None:
    settings.SERVICES_PAGE_SIZE = 20  # type: ignore[attr-defined]
    add_services(0, 5)
    few = queries(deployer_client, reverse("services"))
    add_services(5, 125)
    assert queries(deployer_client, reverse("services") + "?page=3") == few


def test_the_service_page_costs_the_same_queries_for_3_and_80_branches(deployer_client: Client, db: None) -> None:
    add_services(0, 1, branches=3)
    add_services(1, 1, branches=80)
    assert queries(deployer_client, reverse("service", args=["s000"])) == queries(
        deployer_client, reverse("service", args=["s001"])
    )


def test_the_service_page_shows_the_default_running_and_newest_branches_then_all(
    deployer_client: Client, db: None, settings: object
) -> None:
    settings.SERVICE_BRANCHES_SHOWN = 5  # type: ignore[attr-defined]
    add_services(0, 1, branches=12)  # feature/0 runs in test and prod; feature/11 is the newest
    service = Service.objects.get(name="s000")
    service.default_branch = "feature/3"
    service.save()
    page = deployer_client.get(reverse("service", args=["s000"])).content.decode()
    shown = [name for name in (f"feature/{b}" for b in range(12)) if f'data-branch="{name}"' in page]
    assert shown == ["feature/0", "feature/3", "feature/9", "feature/10", "feature/11"]
    assert "5 of 12 branches" in page and "branches=all" in page
    everything = deployer_client.get(reverse("service", args=["s000"]), {"branches": "all"}).content.decode()
    assert everything.count('data-branch="') == 12
    found = deployer_client.get(reverse("service", args=["s000"]), {"q": "feature/1"}).content.decode()
    assert found.count('data-branch="') == 4  # feature/1, 10, 11 and the default


def test_the_branch_search_filters_and_keeps_the_default_branch(
    deployer_client: Client, environment: Environment
) -> None:
    page = deployer_client.get(reverse("service", args=["app"]), {"q": "feat"}).content.decode()
    assert 'data-branch="feature/x"' in page and 'data-branch="main"' in page
    page = deployer_client.get(reverse("service", args=["app"]), {"q": "nomatch"}).content.decode()
    assert 'data-branch="feature/x"' not in page


def test_the_integrations_page_is_for_staff_and_shows_budget_and_errors(
    deployer_client: Client, environment: Environment, client: Client
) -> None:
    IntegrationStatus.objects.create(
        name="github",
        rate_limit=5000,
        rate_remaining=4321,
        rate_reset=timezone.now(),
        error="GitHub answered HTTP 502",
        error_at=timezone.now(),
        consecutive_failures=2,
    )
    assert deployer_client.get(reverse("status")).status_code == 302, "not for non-admins"
    staff = Client()
    staff.force_login(get_user_model().objects.create_user("stan", password="x", is_staff=True))
    assert staff.get(reverse("status")).status_code == 302, "nor for Django staff: Gantry admins only"
    admin = get_user_model().objects.create_superuser("root", password="x")
    client.force_login(admin)
    page = client.get(reverse("status")).content.decode()
    assert 'data-rate-remaining="4321"' in page and "4321 of 5000" in page
    assert "GitHub answered HTTP 502" in page and "2 in a row" in page


def test_the_cached_matrix_is_invalidated_by_a_deploy_request(
    deployer_client: Client, environment: Environment, settings: object, deployer: AbstractBaseUser
) -> None:
    settings.MATRIX_CACHE_SECONDS = 60  # type: ignore[attr-defined]
    assert "queued #" not in deployer_client.get(reverse("services")).content.decode()
    Deploy.objects.create(environment=environment, ref="main", sha="a" * 40, status=DeployStatus.SUCCEEDED)
    assert "aaaaaaaa" not in deployer_client.get(reverse("services")).content.decode(), "served from the cache"

    deploy = deploy_request(environment=environment, ref="feature/x", user=deployer)

    page = deployer_client.get(reverse("services")).content.decode()
    assert f"queued #{deploy.pk}" in page and "aaaaaaaa" in page
