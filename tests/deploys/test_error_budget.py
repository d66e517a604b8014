"""Error budgets from a real Prometheus holding a day of backfilled history (promtool, no real-time waits):
remaining budget and multi-window burn rates, the gate on production deploys, Sloth's recording rules, and
Prometheus down (unknown never blocks, and says so)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from deployer.catalog.load import catalog_apply, catalog_parse
from deployer.choices import Decision, DeployStatus, HostStatus
from deployer.demo.hosts import SshdHost
from deployer.deploys.actions import deploy_decide
from deployer.deploys.error_budget import budget_read
from deployer.deploys.request import deploy_request, deploy_rollback
from deployer.deploys.rules import Ask, DeployOptions, error_budget
from deployer.environments.access import access_for
from deployer.errors import BudgetSpent
from deployer.models import Branch, BudgetReading, Deploy, DeployLog, Environment, Service
from tests.support.catalogs import MakeEnvironment
from tests.support.prometheus import backfill, prometheus_running
from tests.support.waiting import wait_for_deploy, wait_until
from tests.support.worker import Worker

pytestmark = pytest.mark.django_db

RATE = 10_000  # requests a minute per service
# Errors a minute, over the day and over its last hour: 0.01 % (healthy), 0.3 % (spent: 3x the 0.1 % budget),
# 0.01 % then 2 % for an hour (burning: 20x the budget's rate, though most of the day's budget is left).
ERRORS = {"healthy": (1, 1), "spent": (30, 30), "burning": (1, 200), "shown": (30, 30)}


def history(now: float) -> str:
    lines = ["# TYPE http_requests counter"]
    for service, (usual, last_hour) in ERRORS.items():
        for code in ("200", "500"):
            count = 0.0
            for minute in range(26 * 60, -1, -1):
                at = now - minute * 60
                errors = last_hour if minute < 60 else usual
                count += errors if code == "500" else RATE - errors
                lines.append(f'http_requests_total{{svc="{service}",code="{code}"}} {count} {at:.3f}')
    lines.append("# TYPE slo:period_error_budget_remaining:ratio gauge")
    labels = '{sloth_service="pay",sloth_slo="availability"}'
    for minute in range(120, -1, -1):
        lines.append(f"slo:period_error_budget_remaining:ratio{labels} 0.42 {now - minute * 60:.3f}")
    lines.append("# TYPE slo:error_budget:ratio gauge")
    lines += [f"slo:error_budget:ratio{labels} 0.001 {now - m * 60:.3f}" for m in range(120, -1, -1)]
    for window, value in (("5m", 0.02), ("30m", 0.015), ("1h", 0.016), ("6h", 0.004)):
        lines.append(f"# TYPE slo:sli_error:ratio_rate{window} gauge")
        lines += [f"slo:sli_error:ratio_rate{window}{labels} {value} {now - m * 60:.3f}" for m in range(120, -1, -1)]
    return "\n".join(lines) + "\n# EOF\n"


def service_yaml(name: str, *, gate: bool = True) -> str:
    return f"""
  {name}:
    repo: /srv/git/{name}.git
    slo:
      prometheus: main
      objective: 99.9
      window: 1d
      good: sum(increase(http_requests_total{{svc="{name}",code="200"}}[{{{{range}}}}]))
      total: sum(increase(http_requests_total{{svc="{name}"}}[{{{{range}}}}]))
      gate: {str(gate).lower()}
    environments:
      prod: {{deploy_path: /srv/{name}, require_green_build: false, hosts: [{{address: 10.0.0.2}}]}}
"""


CATALOG = (
    "services:"
    + "".join(service_yaml(name) for name in ("healthy", "spent", "burning"))
    + service_yaml("shown", gate=False)
    + """
  pay:
    repo: /srv/git/pay.git
    slo: {prometheus: main, sloth: {service: pay, slo: availability}, gate: true}
    environments:
      test: {deploy_path: /srv/pay, hosts: [{address: 10.0.0.3}]}
      prod: {deploy_path: /srv/pay, require_green_build: false, hosts: [{address: 10.0.0.4}]}
access:
  prod_deployers: [dana]
"""
)


@pytest.fixture
def prometheus(tmp_path: Path, prometheus_port: int, settings: object) -> Iterator[str]:
    directory = tmp_path / "prometheus"
    backfill(directory, history(time.time()))
    with prometheus_running(directory, prometheus_port, ["127.0.0.1:9"]) as url:
        settings.PROMETHEUS_SERVERS = {"main": url}  # type: ignore[attr-defined]
        yield url


@pytest.fixture
def services(db: None) -> dict[str, Service]:
    catalog_apply(catalog_parse(CATALOG))
    for service in Service.objects.all():
        Branch.objects.create(service=service, name="main", sha="a" * 40)
    return {s.name: s for s in Service.objects.all()}


def prod(service: Service) -> Environment:
    return Environment.objects.get(service=service, name="prod")


def test_budget_and_burn_rates_are_read_and_gate_production(
    prometheus: str, services: dict[str, Service], deployer: AbstractBaseUser, deployer_client: Client
) -> None:
    readings = {name: budget_read(service) for name, service in services.items()}

    healthy, spent, burning = readings["healthy"], readings["spent"], readings["burning"]
    assert healthy.error == "" and healthy.remaining == pytest.approx(0.9, abs=0.02)
    assert healthy.burn_rates["1h"] == pytest.approx(0.1, abs=0.02) and not healthy.fast_burn
    assert spent.remaining == pytest.approx(-2.0, abs=0.05) and not spent.fast_burn
    assert burning.burn_rates["1h"] == pytest.approx(20, rel=0.05) and burning.burn_rates["5m"] > 14.4
    assert burning.fast_burn and burning.remaining is not None and burning.remaining > 0
    assert readings["pay"].remaining == pytest.approx(0.42) and readings["pay"].burn_rates["1h"] == pytest.approx(16)
    assert readings["pay"].fast_burn and not readings["pay"].slow_burn

    assert deploy_request(environment=prod(services["healthy"]), ref="main", user=deployer).status == "queued"
    assert deploy_request(environment=prod(services["shown"]), ref="main", user=deployer).status == "queued"
    with pytest.raises(BudgetSpent) as caught:
        deploy_request(environment=prod(services["spent"]), ref="main", user=deployer)
    assert str(caught.value).startswith("spent has spent its error budget: -200% of the budget left; burn rate")
    with pytest.raises(BudgetSpent) as caught:
        deploy_request(environment=prod(services["burning"]), ref="main", user=deployer)
    assert "burning fast (1h and 5m above 14.4×)" in str(caught.value)
    with pytest.raises(BudgetSpent):
        deploy_request(environment=prod(services["pay"]), ref="main", user=deployer)
    test_env = Environment.objects.get(service=services["pay"], name="test")
    assert deploy_request(environment=test_env, ref="main", user=deployer).status == "queued", "production only"

    matrix = deployer_client.get(reverse("services")).content.decode()
    assert 'data-budget title="error budget">budget spent<' in matrix
    assert ">burning, 7% left<" in matrix and ">budget 90%<" in matrix
    page = deployer_client.get(reverse("service", args=["spent"])).content.decode()
    assert "production deploys wait:" in page and "-200% of the budget left" in page
    shown = deployer_client.get(reverse("service", args=["shown"])).content.decode()
    assert "SLO 99.9 % over 1d:" in shown and "(shown only)" in shown
    delivery = deployer_client.get(reverse("delivery")).content.decode()
    assert 'data-figure="error-budget"' in delivery and "spent: budget spent" in delivery
    ask = Ask(prod(services["healthy"]), "main", "a" * 40, deployer, access_for(deployer))
    assert error_budget(ask).startswith("90% of the budget left; burn rate 5m 0.1×")


def test_emergency_deploys_and_rollbacks_pass_a_spent_budget(
    prometheus: str, services: dict[str, Service], deployer: AbstractBaseUser, admin_user: AbstractBaseUser
) -> None:
    environment = prod(services["spent"])
    for sha in ("b", "c"):
        Deploy.objects.create(environment=environment, ref="main", sha=sha * 40, status=DeployStatus.SUCCEEDED)
    budget_read(services["spent"])
    rollback = deploy_rollback(environment=environment, user=deployer)
    assert rollback.status == DeployStatus.QUEUED
    rollback.delete()
    emergency = deploy_request(
        environment=environment,
        ref="main",
        user=admin_user,
        options=DeployOptions(emergency_reason="the fix for the errors that spend it"),
    )
    assert emergency.status == DeployStatus.QUEUED


def test_prometheus_down_keeps_the_last_figures_says_why_and_never_blocks(
    services: dict[str, Service], deployer: AbstractBaseUser, tmp_path: Path, prometheus_port: int, settings: object
) -> None:
    directory = tmp_path / "prometheus"
    backfill(directory, history(time.time()))
    with prometheus_running(directory, prometheus_port, ["127.0.0.1:9"]) as url:
        settings.PROMETHEUS_SERVERS = {"main": url}  # type: ignore[attr-defined]
        assert budget_read(services["spent"]).remaining == pytest.approx(-2.0, abs=0.05)
    reading = budget_read(services["spent"])

    assert reading.remaining == pytest.approx(-2.0, abs=0.05), "the last figures are kept"
    assert "did not answer" in reading.error
    settings.PROMETHEUS_SERVERS = {"main": "http://gantry:s3cret@127.0.0.1:9"}  # type: ignore[attr-defined]
    reading = budget_read(services["spent"])
    assert "Prometheus at http://127.0.0.1:9 did not answer" in reading.error, "credentials never shown"
    assert deploy_request(environment=prod(services["spent"]), ref="main", user=deployer).status == "queued"
    deploy = Deploy.objects.get(environment=prod(services["spent"]))
    assert deploy.status == DeployStatus.QUEUED


@pytest.mark.slow
def test_a_budget_spent_during_a_rollout_pauses_it_before_the_next_batch(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    admin_user: AbstractBaseUser,
    ssh_hosts: list[SshdHost],
    dana_deploys_to_prod: None,
) -> None:
    environment = make_environment(
        ssh_hosts[:2],
        options={"production": "true", "require_green_build": "false", "batch_size": "1", "healthy_for": "3"},
    )
    assert (
        wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker).status
        == DeployStatus.SUCCEEDED
    )
    slo = {"prometheus": "main", "objective": 99.9, "window": "1d", "good": "x[{{range}}]", "total": "y[{{range}}]"}
    Service.objects.filter(pk=environment.service_id).update(slo={**slo, "gate": True})
    now = timezone.now()
    reading = BudgetReading.objects.create(
        service_id=environment.service_id, remaining=0.5, burn_rates={}, read_at=now, checked_at=now
    )

    deploy = deploy_request(environment=environment, ref="feature/shout", user=deployer)
    wait_until(DeployLog.objects.filter(deploy=deploy, message__startswith="batch 1 of 2").exists, timeout=60)
    BudgetReading.objects.filter(pk=reading.pk).update(remaining=-0.4, read_at=timezone.now())
    wait_until(lambda: Deploy.objects.filter(pk=deploy.pk, paused_at__isnull=False).exists(), timeout=60)

    deploy.refresh_from_db()
    assert deploy.pause_reason.startswith("error budget: app has spent its error budget: -40% of the budget left")
    deploy_decide(deploy=deploy, user=admin_user, choice=Decision.ABORT)
    deploy = wait_for_deploy(deploy.pk, celery_worker)
    assert deploy.status == DeployStatus.ROLLED_BACK, deploy.reason
    assert "aborted by admin" in deploy.reason
    assert [h.status for h in deploy.hosts.order_by("host__position")] == [HostStatus.ROLLED_BACK, HostStatus.STAGED]
