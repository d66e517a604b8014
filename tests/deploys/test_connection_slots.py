"""A worker holds at most GANTRY_SSH_MAX_CONNECTIONS SSH connections open: a rollout to more hosts than that
closes each host's connection after each step and opens it again for the next. Real sshd hosts and worker."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser

from deployer import tasks
from deployer.choices import DeployStatus
from deployer.demo.hosts import SshdHost
from deployer.integrations import ssh, ssh_slots
from deployer.integrations.ssh_keys import HostKey
from deployer.models import Branch, Deploy
from tests.fakes.github import FakeGitHub
from tests.fakes.jenkins import FakeJenkins
from tests.support.catalogs import MakeEnvironment
from tests.support.integrations import integration_settings
from tests.support.waiting import wait_for_deploy
from tests.support.worker import Worker

pytestmark = [pytest.mark.slow, pytest.mark.one_backend]

# Each build marks itself running in a directory all loopback hosts share, and records how many ran at once.
BUILD = "mkdir -p {dir} && touch {dir}/$$ && sleep 1 && ls {dir} | grep -cv counts >> {dir}/counts; rm -f {dir}/$$"


def test_a_rollout_to_more_hosts_than_connections_succeeds_with_the_connections_it_may_hold(
    make_environment: MakeEnvironment,
    deployer: AbstractBaseUser,
    fakes: tuple[FakeGitHub, FakeJenkins],
    tmp_path: Path,
) -> None:
    shared = tmp_path / "builds"
    environment = make_environment(options={"build_command": BUILD.format(dir=shared)})
    capped = Worker(queues="capped", env={**integration_settings(*fakes), "GANTRY_SSH_MAX_CONNECTIONS": "2"})
    capped.start()
    try:
        sha = Branch.objects.get(service=environment.service, name="main").sha
        deploy = Deploy.objects.create(environment=environment, ref="main", sha=sha, requested_by=deployer)
        tasks.run_deploy.apply_async((deploy.pk,), queue="capped")
        deploy = wait_for_deploy(deploy.pk, capped)
    finally:
        capped.stop()

    assert deploy.status == DeployStatus.SUCCEEDED, deploy.reason
    assert sorted(host.status for host in deploy.hosts.all()) == ["live"] * 3
    counts = [int(line) for line in (shared / "counts").read_text().split()]
    assert len(counts) == 3 and max(counts) <= 2, f"at most two hosts held a connection at once: {counts}"


def test_a_connection_gives_its_slot_back_when_it_closes(sshd_processes: list[SshdHost], settings: object) -> None:
    settings.SSH_MAX_CONNECTIONS = 1  # type: ignore[attr-defined]
    settings.SSH_COMMAND_TIMEOUT = 1  # type: ignore[attr-defined]
    host = sshd_processes[0]
    target, keys = ssh.Target(host.address, host.port, host.user), [HostKey.of(host.host_key())]
    first = ssh.open_connection(target, keys)
    assert ssh_slots.slots_free() == 0
    with pytest.raises(ssh.StepFailed, match="GANTRY_SSH_MAX_CONNECTIONS=1"):
        ssh.open_connection(target, keys)
    first.close()
    first.close()  # twice: the slot comes back once
    assert ssh_slots.slots_free() == 1
    second = ssh.open_connection(target, keys)
    second.close()
    assert ssh_slots.slots_free() == 1
