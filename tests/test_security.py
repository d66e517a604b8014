"""The security review's findings, each tried as an attacker (or a fault) would, and refused."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from deployer.catalog import catalog_apply, catalog_parse
from deployer.models import Environment, Grant, Service

CATALOG = """
services:
  app:
    repo: /srv/git/app.git
    api_tests:
      smoke: {steps: [{name: up, url: "{{base_url}}/healthz"}]}
    environments:
      test:
        deploy_path: /srv/app
        base_url: http://127.0.0.1:9
        hosts: [{address: 10.0.0.1}]
      prod:
        deploy_path: /srv/app
        base_url: http://127.0.0.1:9
        hosts: [{address: 10.0.0.2}]
"""


@pytest.fixture
def app(db: None) -> Service:
    catalog_apply(catalog_parse(CATALOG))
    return Service.objects.get(name="app")


def signed_in(name: str, *, role: str = "") -> Client:
    user = get_user_model().objects.create_user(name, f"{name}@example.com", f"{name}-password-1")
    if role:
        Grant.objects.create(principal=name, role=role)
    client = Client()
    client.force_login(user)
    return client


def test_a_viewer_may_not_refresh_or_run_the_api_tests(app: Service) -> None:
    viewer = signed_in("vera")
    page = viewer.get(reverse("service", args=["app"])).content.decode()
    assert "Run now" not in page and ">Refresh<" not in page

    refresh = viewer.post(reverse("service-refresh", args=["app"]))
    assert refresh.status_code == 403
    assert "vera may not refresh app: that needs the deploy permission" in refresh.content.decode()
    assert Service.objects.get(pk=app.pk).refresh_requested_at is None, "nothing was queued"

    run = viewer.post(reverse("api-tests-run", args=["app", "test"]))
    assert run.status_code == 403
    assert "vera may not deploy to app/test" in run.content.decode()


def test_run_now_needs_the_deploy_permission_of_that_environment(app: Service) -> None:
    tester = signed_in("tess", role="deployer")
    assert tester.post(reverse("api-tests-run", args=["app", "test"])).status_code == 302
    prod = tester.post(reverse("api-tests-run", args=["app", "prod"]))
    assert prod.status_code == 403 and "tess may not deploy to app/prod" in prod.content.decode()


def test_a_second_refresh_soon_after_is_answered_not_queued(app: Service) -> None:
    tester = signed_in("tess", role="deployer")
    first = tester.post(reverse("service-refresh", args=["app"]), follow=True)
    assert "Refreshing app; reload in a few seconds." in first.content.decode()
    asked = Service.objects.get(pk=app.pk).refresh_requested_at
    assert asked is not None

    second = tester.post(reverse("service-refresh", args=["app"]), follow=True)
    assert "App is already refreshing (asked 0 s ago); reload in a few seconds." in second.content.decode()
    assert Service.objects.get(pk=app.pk).refresh_requested_at == asked, "no second sync was queued"


def test_environments_get_their_secret_scope_from_the_catalog(app: Service) -> None:
    test, prod = Environment.objects.filter(service=app).order_by("position")
    assert (test.api_test_repo_secrets, prod.api_test_repo_secrets) == (True, False), "off by default in production"
