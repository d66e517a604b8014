"""The change timeline in Grafana: a real worker deploys to real sshd hosts and sends each deploy as a region
(opened at its start, closed by PATCH at its end), each batch as a sub-region and a lock as a point, to a
fake Grafana that checks every request and answer against Grafana's published OpenAPI description."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from deployer.choices import DeployStatus
from deployer.deploys.request import deploy_request
from deployer.models import GrafanaAnnotation
from deployer.notify.grafana_outbox import annotation_send
from tests.fakes.grafana import FakeGrafana
from tests.support.catalogs import MakeEnvironment
from tests.support.waiting import wait_for_deploy, wait_until
from tests.support.worker import Worker

pytestmark = pytest.mark.slow


def test_a_deploy_is_a_region_with_a_sub_region_per_batch_and_a_lock_is_a_point(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    grafana: FakeGrafana,
    deployer: AbstractBaseUser,
    deployer_client: Client,
) -> None:
    environment = make_environment()

    deploy = wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)

    assert deploy.status == DeployStatus.SUCCEEDED, deploy.reason
    wait_until(lambda: bool(grafana.with_tag("outcome:succeeded")))
    [region] = [a for a in grafana.with_tag("deploy") if f"deploy #{deploy.pk}<" in a["text"]]
    assert set(region["tags"]) >= {
        "gantry",
        "service:app",
        "environment:test",
        "outcome:succeeded",
        f"sha:{deploy.sha[:12]}",
    }
    assert region["time"] == int(deploy.started_at.timestamp() * 1000)
    assert region["timeEnd"] == int(deploy.finished_at.timestamp() * 1000) > region["time"]
    assert region["patches"] >= 1, "opened at the start, closed with PATCH at the end"
    assert f"dana deployed main ({deploy.sha[:8]}) to app/test: succeeded" in region["text"]
    assert (
        f'href="http://testserver/deploys/{deploy.pk}/"' in region["text"] or f"/deploys/{deploy.pk}" in region["text"]
    )
    wait_until(lambda: len(grafana.with_tag("batch")) == 3)
    batches = sorted(grafana.with_tag("batch"), key=lambda a: a["time"])
    assert [b["text"].split(":")[0] for b in batches] == ["batch 1 of 3", "batch 2 of 3", "batch 3 of 3"]
    assert all(region["time"] <= b["time"] <= b["timeEnd"] <= region["timeEnd"] for b in batches)
    assert not GrafanaAnnotation.objects.exclude(state=GrafanaAnnotation.State.SENT).exists()

    response = deployer_client.post(reverse("environment-lock", args=["app", "test"]), {"reason": "db <move>"})
    assert response.status_code == 302
    wait_until(lambda: bool(grafana.with_tag("locked")))
    [point] = grafana.with_tag("locked")
    assert point["time"] == point["timeEnd"]
    assert point["text"] == "dana locked an environment: db &lt;move&gt;", "escaped: Grafana renders HTML"


def test_grafana_down_never_slows_a_deploy_and_the_timeline_arrives_when_it_is_back(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    grafana: FakeGrafana,
    deployer: AbstractBaseUser,
) -> None:
    environment = make_environment()
    grafana.fail(r"^/api/annotations", status=503)

    deploy = wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)

    assert deploy.status == DeployStatus.SUCCEEDED, deploy.reason
    wait_until(lambda: GrafanaAnnotation.objects.filter(deploy=deploy, attempts__gt=0).exists())
    assert not grafana.annotations
    grafana.heal()
    wait_until(
        lambda: (
            not GrafanaAnnotation.objects.filter(deploy=deploy).exclude(state=GrafanaAnnotation.State.SENT).exists()
        ),
        timeout=90,
    )
    [region] = [a for a in grafana.with_tag("deploy") if f"deploy #{deploy.pk}<" in a["text"]]
    assert "outcome:succeeded" in region["tags"]
    assert len([a for a in grafana.annotations.values() if "deploy" in a["tags"]]) == 1, "made once, not per retry"


@pytest.mark.django_db
def test_a_refused_annotation_is_failed_with_grafanas_message_and_not_retried(
    grafana: FakeGrafana, settings: object
) -> None:
    settings.GRAFANA_TOKEN = "glsa_wrong"  # type: ignore[attr-defined]
    now = int(timezone.now().timestamp() * 1000)
    row = GrafanaAnnotation.objects.create(key="audit-1", time_ms=now, time_end_ms=now, tags=["gantry"], text="x")

    annotation_send(row.pk)

    row.refresh_from_db()
    assert row.state == GrafanaAnnotation.State.FAILED
    assert row.last_error == "Grafana refused POST (HTTP 401): Unauthorized"
    assert grafana.count("POST", "/api/annotations") == 1
    annotation_send(row.pk)
    assert grafana.count("POST", "/api/annotations") == 1
