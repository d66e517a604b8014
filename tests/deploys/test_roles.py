"""Process roles on real hosts: a web and a worker, each with its own restart and health check, hosts that
run one or both, restarts in order, a worker that dies at start caught by its health command. Real sshd
hosts, a real Celery worker, real processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client

from deployer.catalog.load import CatalogError, catalog_apply, catalog_parse
from deployer.choices import DeployStatus
from deployer.demo import setup
from deployer.deploys.fleet import Fleet
from deployer.models import Deploy, DeployHost, Environment
from tests.support.catalogs import AppRepo, MakeEnvironment
from tests.support.deploys import deploy_and_wait, host_root
from tests.support.worker import Worker

pytestmark = pytest.mark.one_backend  # the database backend makes no difference here


def roles_option(app_port: int) -> dict[str, str | None]:
    web = f"{{restart_command: 'sh bin/restart {app_port}', health_check_url: 'http://{{address}}:{app_port}/healthz'}}"
    worker = "{restart_command: sh bin/worker, health_check_command: sh bin/worker-alive, order: 1}"
    return {"roles": f"{{web: {web}, worker: {worker}}}", "restart_command": None, "health_check_url": None}


def role_states(deploy_id: int) -> dict[str, list[tuple[str, str]]]:
    return {
        host.address.split("@")[1].split(":")[0]: [(role["name"], role["state"]) for role in host.roles]
        for host in DeployHost.objects.filter(deploy_id=deploy_id)
    }


def worker_pid(environment_root: Path) -> int | None:
    pidfile = environment_root / "shared" / "worker.pid"
    return int(pidfile.read_text()) if pidfile.exists() else None


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_each_host_restarts_its_roles_in_order_with_their_health_checks(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
    app_port: int,
) -> None:
    environment = make_environment(options=roles_option(app_port), host_roles=["[worker]", "[web, worker]", "[web]"])

    deploy = deploy_and_wait(environment, "main", deployer, celery_worker)

    assert deploy.status == DeployStatus.SUCCEEDED, deploy.reason
    assert role_states(deploy.pk) == {
        "127.0.0.12": [("web", "healthy"), ("worker", "healthy")],
        "127.0.0.13": [("web", "healthy")],
        "127.0.0.11": [("worker", "healthy")],
    }, "hosts switch in the order of their first role: the web hosts, then the worker-only host"
    assert [alive(worker_pid(host_root(environment, i))) for i in range(3)] == [True, True, False]
    lines = [(host.split("@")[-1], message) for host, message in deploy.log_lines.values_list("host", "message")]
    both = [message for host, message in lines if host.startswith("127.0.0.12")]
    assert both.index("web: restarting") < both.index("worker: restarting"), "web first (order 0), then worker"
    assert "worker: health_check_command passed" in both
    assert ("", "worker: restart (on 127.0.0.12, 127.0.0.11, in current, after the switch):\nsh bin/worker") in lines

    page = deployer_client.get(f"/deploys/{deploy.pk}/").content.decode()
    assert 'data-role="worker" data-state="healthy"' in page and 'data-role="web" data-state="healthy"' in page

    first_worker = worker_pid(host_root(environment, 0))
    again = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert again.status == DeployStatus.SUCCEEDED, again.reason
    assert worker_pid(host_root(environment, 0)) != first_worker and not alive(first_worker), "the worker restarted"


@pytest.mark.slow
def test_a_worker_that_dies_at_start_fails_its_health_command(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    app_repo: AppRepo,
    app_port: int,
) -> None:
    setup.repo_branch(app_repo.path, "worker-dies", {"worker.py": "raise SystemExit('cannot reach the queue')\n"}, "W")
    environment = make_environment(options={**roles_option(app_port), "health_check_timeout": "3"})
    good = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert good.status == DeployStatus.SUCCEEDED, good.reason

    bad = deploy_and_wait(environment, "worker-dies", deployer, celery_worker)

    assert bad.status == DeployStatus.ROLLED_BACK
    assert bad.reason.startswith(
        "127.0.0.11: activate failed: worker: health_check_command did not exit 0 within 3 s; last: exited with "
        "status 1; its last lines: worker "
    ), bad.reason
    assert "is not running; its log ends: " in bad.reason and "cannot reach the queue ; rolled back" in bad.reason
    assert role_states(bad.pk)["127.0.0.11"] == [("web", "healthy"), ("worker", "healthy")], (
        "rolled back: the earlier release's worker is healthy again"
    )
    assert os.readlink(host_root(environment, 0) / "current") == f"releases/{good.pk}"
    assert alive(worker_pid(host_root(environment, 0)))


CATALOG = """
services:
  shop:
    repo: /srv/git/shop.git
    roles:
      web: {{restart_command: sh bin/restart, health_check_url: "http://{{address}}:8000/healthz"}}
      worker: {{restart_command: sh bin/worker, health_check_command: pgrep -f worker.py, order: 1}}
    environments:
      test:
        deploy_path: /srv/shop
{extra}        hosts:
          - {{address: app1.internal, roles: [web]}}
          - {{address: app2.internal, roles: [{role}]}}
"""


def problems(extra: str = "", role: str = "worker") -> str:
    try:
        catalog_parse(CATALOG.format(extra=extra, role=role))
    except CatalogError as exc:
        return str(exc)
    return ""


def test_the_catalog_checks_roles() -> None:
    assert problems() == ""
    assert problems(role="wroker") == (
        "catalog.yml:13: services.shop.environments.test.hosts[1].roles: role 'wroker' is not declared; "
        "declared roles: web, worker"
    )
    assert problems(extra="        restart_command: sh bin/restart\n") == (
        "catalog.yml:11: services.shop.environments.test.restart_command: test has roles, so restart_command "
        "belongs to a role: move it under roles.<name>.restart_command"
    )
    typo = problems(extra="        roles: {web: {restart_comand: x}}\n")
    assert "unknown key 'restart_comand'" in typo and "restart_command" in typo, typo


@pytest.mark.django_db
def test_only_hosts_that_serve_traffic_are_drained() -> None:
    text = CATALOG.format(
        extra="        load_balancer: {runtime_api: /run/haproxy/admin.sock, backend: shop}\n", role="worker"
    )
    catalog_apply(catalog_parse(text))
    environment = Environment.objects.get(service__name="shop", name="test")
    deploy = Deploy.objects.create(environment=environment, ref="main", sha="a" * 40, status=DeployStatus.RUNNING)

    runs = Fleet.rolling_out(deploy).runs

    assert [(run.name, [r.name for r in run.roles], run.balancer is not None) for run in runs] == [
        ("app1.internal", ["web"], True),
        ("app2.internal", ["worker"], False),
    ], "the worker host is never taken out of the web backend"
