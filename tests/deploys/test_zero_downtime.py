"""Zero downtime: a real HAProxy in front of 3 demo-app instances, each on its own sshd host, under load
while Gantry rolls a release out one host at a time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser

from deployer.choices import DeployStatus
from deployer.demo.hosts import SshdHost
from deployer.integrations import haproxy
from tests.support.catalogs import MakeEnvironment
from tests.support.deploys import deploy_and_wait
from tests.support.haproxy import HAProxy, all_up, haproxy_running
from tests.support.load import Load
from tests.support.waiting import wait_until
from tests.support.worker import Worker

pytestmark = [pytest.mark.slow, pytest.mark.one_backend]


@pytest.fixture
def balancer(tmp_path: Path, ssh_hosts: list[SshdHost], app_port: int) -> Iterator[HAProxy]:
    """HAProxy balancing the three test hosts' demo app."""
    with haproxy_running(tmp_path, [host.address for host in ssh_hosts], app_port) as proxy:
        yield proxy


def rolling_deploy_under_load(
    make_environment: MakeEnvironment,
    worker: Worker,
    user: AbstractBaseUser,
    proxy: HAProxy,
    *,
    drain: bool,
) -> Load:
    options = {"batch_size": "1"}
    if drain:
        options["load_balancer"] = f"{{runtime_api: {proxy.socket}, backend: app, drain_timeout: 10}}"
    environment = make_environment(options=options)
    first = deploy_and_wait(environment, "main", user, worker)
    assert first.status == DeployStatus.SUCCEEDED, first.reason
    wait_until(lambda: all_up(proxy), timeout=10)
    with Load([f"{proxy.url}/version"], per_url=4) as load:
        time.sleep(0.5)  # traffic flows before the rollout starts
        deploy = deploy_and_wait(environment, "feature/shout", user, worker)
        time.sleep(0.5)
    assert deploy.status == DeployStatus.SUCCEEDED, deploy.reason
    return load


def test_a_rolling_deploy_behind_haproxy_drops_no_request(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, balancer: HAProxy
) -> None:
    load = rolling_deploy_under_load(make_environment, celery_worker, deployer, balancer, drain=True)

    print(f"\nzero downtime, with drain: {load.sent} requests through HAProxy, {len(load.failures)} failed")
    assert load.sent > 100, "the load generator ran during the whole rollout"
    assert load.failures == []
    states = haproxy.servers(balancer.socket, balancer.backend)
    assert not any(s.draining for s in states.values()), "no host is left drained"


def test_without_drain_the_same_rollout_drops_requests(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, balancer: HAProxy
) -> None:
    """Proves the zero-downtime test can fail: restarting hosts that still get traffic loses requests."""
    load = rolling_deploy_under_load(make_environment, celery_worker, deployer, balancer, drain=False)

    print(f"\nwithout drain: {load.sent} requests through HAProxy, {len(load.failures)} failed")
    assert load.failures, "restarts without draining should have lost some requests"


def test_a_host_left_drained_is_made_ready_at_the_start_of_the_next_deploy(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, balancer: HAProxy
) -> None:
    options = {"load_balancer": f"{{runtime_api: {balancer.socket}, backend: app}}"}
    environment = make_environment(options=options)
    haproxy.server_set_state(balancer.socket, "app", "127.0.0.12", "drain")  # as a killed deploy would leave it

    deploy = deploy_and_wait(environment, "main", deployer, celery_worker)

    assert deploy.status == DeployStatus.SUCCEEDED, deploy.reason
    assert deploy.log_lines.filter(message__contains="127.0.0.12 was left drained").exists()
    assert not any(s.draining for s in haproxy.servers(balancer.socket, "app").values())


def test_a_host_missing_from_the_backend_fails_the_deploy_before_anything_changes(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, balancer: HAProxy
) -> None:
    options = {"load_balancer": f"{{runtime_api: {balancer.socket}, backend: web}}"}
    environment = make_environment(options=options)
    deploy = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert deploy.status == DeployStatus.FAILED
    assert "HAProxy has no backend 'web'" in deploy.reason
