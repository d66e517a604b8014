"""Two schedulers by mistake (two `celery beat`s) do nothing twice: each periodic task claims its round, and
each round claims what it acts on, so even two rounds at the same moment do each thing once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.utils import timezone

from deployer.apitests.runs import monitors_due
from deployer.catalog.load import catalog_apply, catalog_parse
from deployer.choices import DeployStatus
from deployer.deploys.lease_queue import leases_advance
from deployer.deploys.reaper import deploys_reap
from deployer.models import Branch, Deploy, DeployLog, Environment, LeaseRequest, ScheduledRound
from deployer.ops.rounds import round_claim

T = TypeVar("T")
CATALOG = """
services:
  app:
    repo: /srv/git/app.git
    api_tests:
      smoke: {steps: [{name: up, url: "{{base_url}}/healthz"}]}
    environments:
      test:
        deploy_path: /srv/app
        base_url: http://app-test.internal
        monitor_minutes: 5
        lease_minutes: 30
        hosts: [{address: app1.internal}]
"""


def at_once(work: Callable[[], T], times: int = 2) -> list[T]:
    """`work` in `times` threads released together, as rounds of two schedulers arriving at one moment."""
    start = threading.Barrier(times)
    results: list[T] = []

    def one() -> None:
        try:
            start.wait()
            results.append(work())
        finally:
            connection.close()

    threads = [threading.Thread(target=one) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.fixture
def environment(transactional_db: None) -> Environment:
    catalog_apply(catalog_parse(CATALOG))
    return Environment.objects.get(service__name="app", name="test")


def test_a_periodic_round_runs_once_per_interval_whatever_the_number_of_schedulers(db: None) -> None:
    assert round_claim("gantry.example", every_seconds=60)
    assert not round_claim("gantry.example", every_seconds=60), "a second scheduler within the same minute"

    ScheduledRound.objects.filter(name="gantry.example").update(started_at=timezone.now() - timedelta(seconds=50))
    assert round_claim("gantry.example", every_seconds=60), "the next round (a scheduler's clock is never exact)"


def test_two_rounds_at_once_claim_a_round_once(transactional_db: None) -> None:
    assert sorted(at_once(lambda: round_claim("gantry.example", every_seconds=60))) == [False, True]


def test_two_monitoring_rounds_at_once_schedule_an_environments_tests_once(environment: Environment) -> None:
    found = at_once(monitors_due)

    assert sorted(found, key=len) == [[], [environment.pk]]
    assert monitors_due() == [], "and not again before monitor_minutes"
    Environment.objects.filter(pk=environment.pk).update(monitor_claimed_at=timezone.now() - timedelta(minutes=6))
    assert monitors_due() == [environment.pk]


def test_two_lease_rounds_at_once_start_a_queued_deploy_once(
    environment: Environment, deployer: AbstractBaseUser
) -> None:
    LeaseRequest.objects.create(environment=environment, user=deployer, ref="main")
    Branch.objects.create(service=environment.service, name="main", sha="a" * 40)

    started = at_once(leases_advance)

    assert sorted(len(ids) for ids in started) == [0, 1]
    assert Deploy.objects.count() == 1 and not LeaseRequest.objects.exists()


def test_two_reaper_rounds_at_once_resend_a_lost_deploy_once(
    environment: Environment, deployer: AbstractBaseUser
) -> None:
    long_ago = timezone.now() - timedelta(minutes=5)
    deploy = Deploy.objects.create(
        environment=environment, requested_by=deployer, ref="main", sha="a" * 40, status=DeployStatus.QUEUED
    )
    Deploy.objects.filter(pk=deploy.pk).update(created_at=long_ago, queue_waiting_since=long_ago)

    at_once(deploys_reap)

    sent = DeployLog.objects.filter(deploy=deploy, message__startswith="the task queue is back")
    assert sent.count() == 1, "sent by one round only"
