"""Running Gantry: /healthz, /readyz, /metrics, and the deploy id on every log line."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from deployer.celery import app
from deployer.choices import DeployStatus
from deployer.lib.logcontext import DeployIdFilter, deploy_context, in_this_context
from deployer.models import Deploy, Environment, SlackMessage, SyncState
from deployer.version import VERSION

TOKEN = "scrape-me-please"


def test_healthz_answers_without_signing_in(db: None) -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_checks_the_database_and_the_broker(db: None) -> None:
    response = Client().get("/readyz")
    assert response.status_code == 200 and response.json() == {"database": "ok", "broker": "ok"}


@pytest.fixture
def dead_broker() -> Iterator[None]:
    """The broker URL points at a port nothing listens on (a broker that is down)."""
    before = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:9/0"
    try:
        yield
    finally:
        app.conf.broker_url = before


def test_readyz_says_503_and_names_the_broker_when_it_is_down(db: None, dead_broker: None) -> None:
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"database": "ok", "broker": "unavailable"}, "which part, not its error (anyone reads it)"


def scrape(client: Client, **headers: str) -> dict[str, Any]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_need_the_token_or_an_admin(db: None, settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    refused = Client().get("/metrics")
    assert refused.status_code == 401 and "set GANTRY_METRICS_TOKEN" in refused.json()["error"]
    settings.METRICS_TOKEN = TOKEN
    assert Client().get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    staff = Client()
    staff.force_login(get_user_model().objects.create_user("stan", "stan@example.com", "pw", is_staff=True))
    assert staff.get("/metrics").status_code == 401, "Django staff are not Gantry admins"
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    assert admin.get("/metrics").status_code == 200


def test_metrics_count_deploys_durations_waits_syncs_and_the_outbox(
    environment: Environment, settings: Any, django_assert_max_num_queries: Any
) -> None:
    settings.METRICS_TOKEN = TOKEN
    now = timezone.now()

    def deploy(status: DeployStatus, wait: float, took: float) -> Deploy:
        return Deploy.objects.create(
            environment=environment,
            ref="main",
            sha="a" * 40,
            status=status,
            enqueued_at=now - timedelta(seconds=wait + took),
            started_at=now - timedelta(seconds=took),
            finished_at=now,
        )

    deploy(DeployStatus.SUCCEEDED, 2, 25)
    deploy(DeployStatus.SUCCEEDED, 20, 90)
    failed = deploy(DeployStatus.FAILED, 0.5, 5)
    SlackMessage.objects.create(deploy=failed, channel="#x", text="")
    SyncState.objects.create(
        service=environment.service, source="github", synced_at=now - timedelta(minutes=3), error="502"
    )

    with django_assert_max_num_queries(12):
        samples = scrape(Client(), Authorization=f"Bearer {TOKEN}")

    where = (("environment", "test"), ("service", "app"))
    assert samples[("gantry_build_info", (("version", VERSION),))] == 1, "which Gantry answers"
    assert samples[("gantry_deploys_total", (*where[:1], ("outcome", "succeeded"), where[1]))] == 2
    assert samples[("gantry_deploys_total", (*where[:1], ("outcome", "failed"), where[1]))] == 1
    assert samples[("gantry_deploy_duration_seconds_bucket", (*where[:1], ("le", "10.0"), where[1]))] == 1
    assert samples[("gantry_deploy_duration_seconds_bucket", (*where[:1], ("le", "30.0"), where[1]))] == 2
    assert samples[("gantry_deploy_duration_seconds_bucket", (*where[:1], ("le", "+Inf"), where[1]))] == 3
    assert samples[("gantry_deploy_duration_seconds_count", where)] == 3
    assert samples[("gantry_deploy_duration_seconds_sum", where)] == pytest.approx(120, abs=0.1)
    assert samples[("gantry_deploy_queue_wait_seconds_bucket", (*where[:1], ("le", "1.0"), where[1]))] == 1
    assert samples[("gantry_deploy_queue_wait_seconds_bucket", (*where[:1], ("le", "5.0"), where[1]))] == 2
    assert samples[("gantry_deploys_active", (("status", "running"),))] == 0
    assert samples[("gantry_sync_failing_services", (("source", "github"),))] == 1
    assert samples[("gantry_sync_age_seconds", (("service", "app"), ("source", "github")))] >= 180
    assert samples[("gantry_outbox_backlog", (("outbox", "slack"),))] == 1
    assert samples[("gantry_outbox_backlog", (("outbox", "webhooks"),))] == 0


def test_every_log_line_about_a_deploy_carries_its_id_even_from_pool_threads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("deployer.anything")
    handler = caplog.handler
    handler.addFilter(DeployIdFilter())

    def work(host: str) -> None:
        logger.warning("switching %s", host)

    with deploy_context(42):
        logger.warning("outside the pool")
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(in_this_context(work), ["h1", "h2"]))
    logger.warning("after the deploy")

    stamped = {record.getMessage(): record.deploy_id for record in caplog.records}
    assert stamped == {
        "outside the pool": 42,
        "switching h1": 42,
        "switching h2": 42,
        "after the deploy": "-",
    }
