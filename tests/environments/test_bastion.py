"""Hosts behind a bastion (`proxy_jump:`): the hosts' names resolve only on the jump host (its sshd runs in a
mount namespace of its own, with its own /etc/hosts), so Gantry reaches them through it or not at all; the jump
host's key is checked like any host's."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser

from deployer.choices import DeployStatus, HostStatus
from deployer.demo import setup
from deployer.demo.hosts import SshdHost, sshd_path
from deployer.deploys.request import deploy_request
from deployer.environments.host_keys import keys_waiting
from deployer.integrations.ssh import Target
from deployer.integrations.ssh_keys import HostKey
from deployer.models import TrustedHostKey
from tests.support.catalogs import MakeEnvironment
from tests.support.net import free_port
from tests.support.waiting import wait_for_deploy
from tests.support.worker import Worker

pytestmark = pytest.mark.slow
BASTION_ADDRESS = "127.0.0.95"


@dataclass
class Bastion:
    host: SshdHost
    hidden: list[SshdHost]  # the test hosts under names only the bastion resolves

    @property
    def jump(self) -> str:
        return f"{self.host.user}@{self.host.address}:{self.host.port}"


@pytest.fixture(scope="module")
def bastion_process(sshd_processes: list[SshdHost], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bastion]:
    directory = tmp_path_factory.mktemp("bastion")
    hidden = [replace(host, address=f"app-{n}.hidden") for n, host in enumerate(sshd_processes, 1)]
    names = "".join(f"{real.address} {host.address}\n" for real, host in zip(sshd_processes, hidden, strict=True))
    hosts_file = directory / "hosts"
    hosts_file.write_text(Path("/etc/hosts").read_text() + names)
    bastion = SshdHost(directory / "sshd", BASTION_ADDRESS, free_port(BASTION_ADDRESS))
    setup.hosts_authorize([bastion])
    # Its own /etc/hosts, seen by it alone: the hosts' names mean nothing to Gantry.
    script = 'mount --bind "$1" /etc/hosts && exec "$2" -D -e -f "$3"'
    command = ["unshare", "--mount", "sh", "-c", script, "sh", str(hosts_file), sshd_path(), str(bastion.config_path)]
    process = subprocess.Popen(command)
    bastion.wait_ready(process)
    yield Bastion(bastion, hidden)
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def bastion(bastion_process: Bastion, ssh_hosts: list[SshdHost]) -> Bastion:
    """The bastion, its key and the hidden hosts' keys trusted (each test's database is new)."""
    for host in [bastion_process.host, *bastion_process.hidden]:
        key = HostKey.of(host.host_key())
        TrustedHostKey.objects.update_or_create(
            host=Target(host.address, host.port, host.user).known_hosts_name,
            key_type=key.key_type,
            defaults={"key": key.base64, "fingerprint": key.fingerprint, "trusted_by_name": "tests"},
        )
    return bastion_process


def quiet(options: dict[str, str | None]) -> dict[str, str | None]:
    # The app's health URL names the host: only the bastion could resolve it. The hosts' restart is checked.
    return {"health_check_url": None, "health_check_command": "'true'", **options}


def test_hosts_reachable_only_through_the_bastion_are_deployed_through_it(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, bastion: Bastion
) -> None:
    direct = make_environment(bastion.hidden, options=quiet({}))
    failed = wait_for_deploy(deploy_request(environment=direct, ref="main", user=deployer).pk, celery_worker)
    assert failed.status == DeployStatus.FAILED, "the names do not resolve here: no way in but the bastion"
    assert "app-1.hidden" in failed.reason

    environment = make_environment(bastion.hidden, options=quiet({"proxy_jump": bastion.jump}))
    assert [h.proxy_jump for h in environment.hosts.all()] == [[bastion.jump]] * 3
    deploy = wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)
    assert deploy.status == DeployStatus.SUCCEEDED, deploy.reason
    assert {h.status for h in deploy.hosts.all()} == {HostStatus.LIVE}


def test_an_untrusted_bastion_key_stops_the_deploy_and_waits_for_a_person(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, bastion: Bastion
) -> None:
    TrustedHostKey.objects.filter(host=f"[{BASTION_ADDRESS}]:{bastion.host.port}").delete()
    environment = make_environment(bastion.hidden, options=quiet({"proxy_jump": bastion.jump}))
    deploy = wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)
    assert deploy.status == DeployStatus.FAILED
    assert f"{BASTION_ADDRESS}:{bastion.host.port} offered host key" in deploy.reason
    (waiting,) = keys_waiting(environment)
    assert waiting.name == f"[{BASTION_ADDRESS}]:{bastion.host.port}", "offered for a person to check and trust"
