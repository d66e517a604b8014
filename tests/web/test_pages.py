"""The pages: signed-in only, CSRF-protected, a live log that sends only new lines."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from deployer.catalog.load import catalog_apply, catalog_parse
from deployer.choices import DeployStatus, SyncSource
from deployer.models import Deploy, DeployLog, Environment, SyncState

PAGES = [
    ("services", []),
    ("service", ["app"]),
    ("history", []),
    ("deploy", [1]),
    ("deploy-log", [1]),
]


@pytest.mark.parametrize(("name", "args"), PAGES)
def test_every_page_needs_a_signed_in_user(client: Client, environment: Environment, name: str, args: list) -> None:
    response = client.get(reverse(name, args=args))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_an_anonymous_deploy_request_is_sent_to_sign_in(client: Client, environment: Environment) -> None:
    response = client.post(reverse("deploy-create", args=["app", "test"]), {"ref": "main"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert not Deploy.objects.exists()


def test_a_deploy_request_without_a_csrf_token_is_refused(environment: Environment, deployer: AbstractBaseUser) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(deployer)
    response = client.post(reverse("deploy-create", args=["app", "test"]), {"ref": "main"})
    assert response.status_code == 403
    assert not Deploy.objects.exists()


def test_the_service_page_lists_the_default_branch_first_with_deploy_buttons(
    deployer_client: Client, environment: Environment
) -> None:
    page = deployer_client.get(reverse("service", args=["app"])).content.decode()
    assert page.index('data-branch="main"') < page.index('data-branch="feature/x"')
    assert "Deploy to test" in page
    assert "never synced" in page


def test_the_service_page_shows_a_failed_sync_as_stale(deployer_client: Client, environment: Environment) -> None:
    SyncState.objects.create(
        service=environment.service, source=SyncSource.BRANCHES, synced_at=timezone.now(), error="repo gone"
    )
    page = deployer_client.get(reverse("service", args=["app"])).content.decode()
    assert "stale: repo gone" in page and re.search(r"branches updated <time [^>]*data-ago[^>]*>0 s ago</time>", page)


def test_the_deploy_button_is_disabled_while_a_deploy_runs(deployer_client: Client, environment: Environment) -> None:
    deploy = Deploy.objects.create(environment=environment, ref="main", sha="a" * 40, status=DeployStatus.RUNNING)
    page = deployer_client.get(reverse("service", args=["app"])).content.decode()
    assert f'disabled title="busy: deploy #{deploy.pk} is running"' in page


def _log(deploy: Deploy, count: int) -> list[DeployLog]:
    return [
        DeployLog.objects.create(deploy=deploy, at=timezone.now(), host="h1", message=f"line {n}") for n in range(count)
    ]


def test_the_live_log_returns_only_lines_after_the_last_one_seen(
    deployer_client: Client, environment: Environment
) -> None:
    deploy = Deploy.objects.create(environment=environment, ref="main", sha="a" * 40, status=DeployStatus.RUNNING)
    lines = _log(deploy, 5)

    body = deployer_client.get(reverse("deploy-log", args=[deploy.pk]), {"after": lines[2].pk}).content.decode()

    assert "line 0" not in body and "line 2" not in body
    assert "line 3" in body and "line 4" in body
    assert f"?after={lines[4].pk}" in body, "the next poll starts after the newest line"
    assert 'id="deploy-summary" class="card summary" hx-swap-oob="true"' in body


def test_the_live_log_stops_polling_when_the_deploy_has_finished(
    deployer_client: Client, environment: Environment
) -> None:
    deploy = Deploy.objects.create(environment=environment, ref="main", sha="a" * 40, status=DeployStatus.SUCCEEDED)
    _log(deploy, 2)

    body = deployer_client.get(reverse("deploy-log", args=[deploy.pk]), {"after": 0}).content.decode()

    assert "line 1" in body and "log-poll" not in body
    assert 'data-status="succeeded"' in body

    # Moments after its end it may still log (old releases are pruned after the end is recorded): the page
    # keeps polling a little, then stops.
    Deploy.objects.filter(pk=deploy.pk).update(finished_at=timezone.now())
    assert "log-poll" in deployer_client.get(reverse("deploy-log", args=[deploy.pk]), {"after": 0}).content.decode()
    Deploy.objects.filter(pk=deploy.pk).update(finished_at=timezone.now() - timedelta(minutes=1))
    assert "log-poll" not in deployer_client.get(reverse("deploy-log", args=[deploy.pk]), {"after": 0}).content.decode()


@pytest.mark.parametrize("after", ["-1", "abc", "1.5"])
def test_a_bad_log_cursor_is_refused(deployer_client: Client, environment: Environment, after: str) -> None:
    deploy = Deploy.objects.create(environment=environment, ref="main", sha="a" * 40)
    response = deployer_client.get(reverse("deploy-log", args=[deploy.pk]), {"after": after})
    assert response.status_code == 400
    assert b"after must be the id of the last log line" in response.content


def test_the_deploy_page_shows_the_log_and_polls_while_running(
    deployer_client: Client, environment: Environment
) -> None:
    deploy = Deploy.objects.create(environment=environment, ref="main", sha="a" * 40, status=DeployStatus.RUNNING)
    lines = _log(deploy, 3)
    page = deployer_client.get(reverse("deploy", args=[deploy.pk])).content.decode()
    assert "line 2" in page and f"?after={lines[2].pk}" in page


def _add_services(count: int) -> None:
    """`count` services with test and prod, each with one good deploy."""
    services = "".join(
        f"  s{n}:\n    repo: /srv/git/s{n}\n    environments:\n"
        f"      test: {{deploy_path: /srv/s{n}, hosts: [{{address: 10.0.1.1}}]}}\n"
        f"      prod: {{deploy_path: /srv/s{n}, hosts: [{{address: 10.0.2.1}}]}}\n"
        for n in range(count)
    )
    catalog_apply(catalog_parse("services:\n" + services))
    for env in Environment.objects.filter(deploys__isnull=True):
        Deploy.objects.create(environment=env, ref="main", sha="a" * 40, status=DeployStatus.SUCCEEDED)


@pytest.mark.parametrize("name", ["services", "history"])
def test_page_queries_do_not_grow_with_the_number_of_services(deployer_client: Client, db: None, name: str) -> None:
    _add_services(2)
    with CaptureQueriesContext(connection) as few:
        assert deployer_client.get(reverse(name)).status_code == 200
    _add_services(20)
    with CaptureQueriesContext(connection) as many:
        assert deployer_client.get(reverse(name)).status_code == 200
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]
