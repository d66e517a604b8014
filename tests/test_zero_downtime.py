"""Zero downtime: a real HAProxy in front of 3 demo-app instances, each on its own sshd host, under load
while Gantry rolls a release out one host at a time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.contrib.auth.models import AbstractBaseUser

from deployer.choices import DeployStatus
from deployer.demo.hosts import SshdHost
from deployer.integrations import haproxy
from tests.conftest import MakeEnvironment, wait_until
from tests.support.haproxy import HAProxy, haproxy_running
from tests.support.worker import Worker
from tests.test_rollout import deploy_and_wait

pytestmark = [pytest.mark.slow, pytest.mark.one_backend]


@pytest.fixture
def balancer(tmp_path: Path, ssh_hosts: list[SshdHost], app_port: int) -> Iterator[HAProxy]:
    """HAProxy balancing the three test hosts' demo app."""
    with haproxy_running(tmp_path, [host.address for host in ssh_hosts], app_port) as proxy:
        yield proxy


class Load:
    """Threads sending GET requests through the balancer until stopped; counts what failed."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.sent = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            try:
                answer = session.get(f"{self.url}/version", timeout=5)
                failure = "" if answer.status_code == 200 else f"HTTP {answer.status_code}"
            except requests.RequestException as exc:
                failure = exc.__class__.__name__
            with self._lock:
                self.sent += 1
                if failure:
                    self.failures.append(failure)


def all_up(proxy: HAProxy) -> bool:
    return all(s.status == "UP" for s in haproxy.servers(proxy.socket, proxy.backend).values())


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
    with Load(proxy.url) as load:
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
