"""Delivery metrics: DORA figures from production deploys, per team and service, and the page that shows them."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.urls import reverse

from deployer.catalog.load import catalog_apply, catalog_parse
from deployer.choices import DeployStatus, DeployTrigger
from deployer.delivery.dora import Scope, figures
from deployer.models import Deploy, DeployCommit, Environment
from tests.support.catalogs import MakeEnvironment
from tests.support.deploys import deploy_and_wait
from tests.support.worker import Worker

CATALOG = """
teams:
  web: {}
  ops: {}
services:
  shop:
    team: web
    repo: /srv/git/shop.git
    environments:
      test: {deploy_path: /srv/shop, hosts: [{address: 10.0.0.1}]}
      prod: {deploy_path: /srv/shop, production: true, hosts: [{address: 10.0.0.2}]}
  ledger:
    team: ops
    repo: /srv/git/ledger.git
    environments:
      prod: {deploy_path: /srv/ledger, production: true, hosts: [{address: 10.0.0.3}]}
"""
MONDAY = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC (TIME_ZONE is UTC in the tests)


def ran(
    environment: Environment,
    status: DeployStatus,
    *,
    at: datetime,
    took: float = 60,
    waited: float = 5,
    trigger: DeployTrigger = DeployTrigger.MANUAL,
    commits_aged: tuple[float, ...] = (),
) -> Deploy:
    """A finished deploy at `at` (its end), with commits made `commits_aged` hours before it ended."""
    started = at - timedelta(seconds=took)
    deploy = Deploy.objects.create(
        environment=environment,
        ref="main",
        sha="a" * 40,
        status=status,
        trigger=trigger,
        enqueued_at=started - timedelta(seconds=waited),
        started_at=started,
        finished_at=at,
    )
    Deploy.objects.filter(pk=deploy.pk).update(created_at=started - timedelta(seconds=waited))
    for position, hours in enumerate(commits_aged):
        DeployCommit.objects.create(
            deploy=deploy,
            position=position,
            sha=f"{position:040d}",
            author="dana",
            subject="change",
            committed_at=at - timedelta(hours=hours),
        )
    return deploy


@pytest.fixture
def history(db: None) -> dict[str, Environment]:
    catalog_apply(catalog_parse(CATALOG))
    envs = {f"{e.service.name}/{e.name}": e for e in Environment.objects.select_related("service")}
    shop, ledger = envs["shop/prod"], envs["ledger/prod"]
    ran(shop, DeployStatus.SUCCEEDED, at=MONDAY, commits_aged=(1, 3))
    ran(shop, DeployStatus.FAILED, at=MONDAY + timedelta(hours=2), took=30)
    ran(shop, DeployStatus.SUCCEEDED, at=MONDAY + timedelta(hours=3), commits_aged=(2,))  # restored in 1 h
    ran(shop, DeployStatus.SUCCEEDED, at=MONDAY + timedelta(days=2, hours=5), commits_aged=(24,))
    ran(shop, DeployStatus.SUCCEEDED, at=MONDAY + timedelta(days=2, hours=6), trigger=DeployTrigger.ROLLBACK)
    ran(shop, DeployStatus.CANCELLED, at=MONDAY + timedelta(days=3))
    ran(envs["shop/test"], DeployStatus.SUCCEEDED, at=MONDAY, commits_aged=(100,))  # not production
    ran(ledger, DeployStatus.TESTS_FAILED, at=MONDAY + timedelta(days=1), commits_aged=(5,), waited=65)
    return envs


def test_dora_figures_count_production_only_and_attribute_to_the_owning_team(history: dict[str, Environment]) -> None:
    week = Scope(since=date(2026, 11, 2), until=date(2026, 11, 8))
    everyone = figures(week)
    assert everyone.deliveries == 4, "3 shop + 1 ledger (tests failed but live); not test, not the rollback"
    assert everyone.per_day[:3] == [(date(2026, 11, 2), 2), (date(2026, 11, 3), 1), (date(2026, 11, 4), 1)]
    assert everyone.per_week == [(date(2026, 11, 2), 4)]
    assert dict(everyone.by_weekday) == {"Mon": 2, "Tue": 1, "Wed": 1, "Thu": 0, "Fri": 0, "Sat": 0, "Sun": 0}
    hours = dict(everyone.by_hour)
    assert (hours[9], hours[12], hours[14], sum(hours.values())) == (2, 1, 1, 4)

    web = figures(Scope(since=week.since, until=week.until, team="web"))
    assert web.deliveries == 3
    # Lead time: commits 1 h, 3 h, 2 h and 24 h before their deploy went live.
    assert (web.lead_time.count, web.lead_time.median, web.lead_time.p90) == (4, 2.5 * 3600, 24 * 3600)
    # Failures: the failed deploy, and the one followed by a rollback; 2 of 4 that ran (no cancel, no rollback).
    assert (web.failed, web.ran) == (2, 4) and web.change_failure_rate == 0.5
    # Restored: the failure by the next good deploy 1 h later, the other by its rollback 1 h later.
    assert (web.time_to_restore.count, web.time_to_restore.median) == (2, 3600.0)
    assert web.duration.median == 60.0 and web.queue_wait.median == 5.0

    ops = figures(Scope(since=week.since, until=week.until, team="ops"))
    assert (ops.deliveries, ops.failed, ops.ran, ops.queue_wait.p90) == (1, 1, 1, 65.0)
    assert figures(Scope(since=week.since, until=week.until, service="ledger")).deliveries == 1
    assert figures(Scope(since=date(2026, 11, 9), until=date(2026, 11, 15))).deliveries == 0


def test_the_page_shows_each_chart_with_its_table(
    history: dict[str, Environment], deployer_client: Client, django_assert_max_num_queries: Any
) -> None:
    with django_assert_max_num_queries(10):
        response = deployer_client.get(
            reverse("delivery"), {"team": "web", "since": "2026-11-02", "until": "2026-11-08"}
        )
    page = response.content.decode()
    assert response.status_code == 200
    assert re.search(r'data-figure="deploys"><td>[^<]+</td><td>3</td>', page)
    assert re.search(r'data-figure="change-failure-rate">.*?<td>50%</td><td>2 of 4 deploys</td>', page)
    charts = json.loads(re.search(r'<script id="delivery-charts" type="application/json">(.*?)</script>', page)[1])
    assert charts["by_weekday"]["values"] == [2, 0, 1, 0, 0, 0, 0]
    for name in ("per_day", "per_week", "by_weekday", "by_hour"):
        assert f'<canvas data-chart="{name}"' in page and f'data-table="{name}"' in page
    assert "/static/vendor/chart.umd.min.js" in page, "served from static/, no CDN"


def test_a_bad_range_says_what_is_wrong(db: None, deployer_client: Client) -> None:
    swapped = deployer_client.get(reverse("delivery"), {"since": "2026-11-08", "until": "2026-11-02"})
    assert swapped.status_code == 400 and "is after" in swapped.content.decode()
    too_long = deployer_client.get(reverse("delivery"), {"since": "2020-01-01", "until": "2026-01-01"})
    assert too_long.status_code == 400 and "at most 400 days" in too_long.content.decode()
    assert deployer_client.get(reverse("delivery"), {"team": "nobody"}).status_code == 400


@pytest.mark.slow
def test_the_worker_records_the_commits_a_deploy_shipped(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, deployer_client: Client
) -> None:
    environment = make_environment()
    first = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert first.commits_total is None, "a first deploy has nothing to compare with"
    second = deploy_and_wait(environment, "feature/shout", deployer, celery_worker)
    assert second.commits_total == 1
    (commit,) = second.commits.all()
    assert commit.sha == second.sha and commit.subject == "Shout the greeting" and commit.author
    page = deployer_client.get(reverse("deploy", args=[second.pk])).content.decode()
    assert 'data-commits="1"' in page and "Shout the greeting" in page
