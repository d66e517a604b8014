"""Gantry checks SSH host keys against its own known_hosts and never auto-accepts one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.management import call_command
from django.core.management.base import CommandError

from deployer.choices import DeployStatus
from deployer.demo.hosts import SshdHost
from deployer.deploys.request import deploy_request
from deployer.integrations.ssh import Target, ed25519_key_write, known_hosts_trust, ssh_key_ensure
from tests.conftest import MakeEnvironment, free_port, wait_for_deploy
from tests.support.worker import Worker

pytestmark = pytest.mark.slow


@pytest.fixture
def new_host(tmp_path: Path) -> Iterator[SshdHost]:
    """A fresh sshd with a key Gantry has never seen."""
    host = SshdHost(tmp_path / "new-host", "127.0.0.14", free_port("127.0.0.14"))
    host.prepare(ssh_key_ensure())
    process = host.start()
    yield host
    process.terminate()
    process.wait(timeout=10)


def test_an_unknown_host_key_fails_the_deploy_and_says_how_to_trust_it(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, new_host: SshdHost
) -> None:
    environment = make_environment(hosts=[new_host])
    known_before = settings.GANTRY_KNOWN_HOSTS.read_text()

    deploy = wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)

    assert deploy.status == DeployStatus.FAILED
    assert "not in Gantry's known_hosts" in deploy.reason
    assert settings.GANTRY_KNOWN_HOSTS.read_text() == known_before, "nothing was auto-accepted"
    command = re.search(r"manage\.py trust_host (\S+) --fingerprint (\S+)", deploy.reason)
    assert command is not None, deploy.reason

    # Following the message's advice makes the next deploy work.
    call_command("trust_host", command.group(1), "--fingerprint", command.group(2))
    deploy = wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)
    assert deploy.status == DeployStatus.SUCCEEDED, deploy.reason


def test_a_changed_host_key_fails_the_deploy(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, new_host: SshdHost
) -> None:
    impostor_key = paramiko.Ed25519Key(filename=str(_other_key(new_host.directory)))
    known_hosts_trust(Target(new_host.address, new_host.port, new_host.user), impostor_key)
    environment = make_environment(hosts=[new_host])

    deploy = wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)

    assert deploy.status == DeployStatus.FAILED
    assert "CHANGED" in deploy.reason and "--replace" in deploy.reason
    assert not (Path(environment.hosts.get().path) / "releases").exists(), "nothing reached the host"


def test_trust_host_refuses_a_fingerprint_that_does_not_match(new_host: SshdHost) -> None:
    with pytest.raises(CommandError, match="refusing to trust it"):
        call_command("trust_host", f"{new_host.address}:{new_host.port}", "--fingerprint", "SHA256:not-it")


def _other_key(directory: Path) -> Path:
    path = directory / "impostor_key"
    ed25519_key_write(path, "impostor")
    return path
