"""What hangs is stopped: a hung restart is bounded by its restart_timeout, and a cancel that asks for it stops
the command running on a host now (its whole process group on the host, not the worker). Real sshd hosts,
a real Celery worker, real remote processes."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.urls import reverse

from deployer.choices import DeployStatus, HostStatus
from deployer.demo.hosts import SshdHost
from deployer.deploys.request import deploy_request
from deployer.integrations import ssh
from deployer.integrations.ssh_keys import HostKey
from deployer.models import Environment
from tests.support.catalogs import MakeEnvironment
from tests.support.deploys import deploy_and_wait, host_root, host_status
from tests.support.waiting import wait_for_deploy, wait_until
from tests.support.worker import Worker

pytestmark = pytest.mark.slow


def running(marker: str) -> bool:
    """Whether a process whose command line holds `marker` runs (the sshd hosts are this machine)."""
    return subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0


def test_a_hung_restart_is_stopped_at_its_restart_timeout(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    ssh_hosts: list[SshdHost],
    app_port: int,
) -> None:
    environment = make_environment(ssh_hosts[:1])
    first = deploy_and_wait(environment, "main", deployer, celery_worker)
    Environment.objects.filter(pk=environment.pk).update(
        restart_command=f"sh bin/restart {app_port}\nsleep 41.5", restart_timeout=2
    )

    hung = deploy_and_wait(environment, "main", deployer, celery_worker)

    assert hung.status == DeployStatus.FAILED
    assert hung.reason.startswith(
        "127.0.0.11: activate failed: restart_command failed: still running after 2 s; stopped"
    ), hung.reason
    assert "and the rollback failed too" in hung.reason, "the rollback's restart hangs the same way, and is bounded"
    assert not running("sleep 41.5"), "the remote command was stopped, not left behind"
    assert (host_root(environment, 0) / "current").readlink().name in {str(first.pk), str(hung.pk)}


def test_cancel_with_stop_stops_the_command_running_on_a_host(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
    ssh_hosts: list[SshdHost],
    app_port: int,
) -> None:
    environment = make_environment(ssh_hosts[:2], options={"restart_timeout": "600"})
    first = deploy_and_wait(environment, "main", deployer, celery_worker)
    Environment.objects.filter(pk=environment.pk).update(restart_command=f"sh bin/restart {app_port} && sleep 43.5")
    deploy = deploy_request(environment=environment, ref="main", user=deployer)
    wait_until(lambda: host_status(deploy, "127.0.0.11") == HostStatus.ACTIVATING and running("sleep 43.5"))

    page = deployer_client.get(reverse("deploy", args=[deploy.pk])).content.decode()
    assert "Cancel and stop what runs now" in page
    asked = time.monotonic()
    response = deployer_client.post(reverse("deploy-cancel", args=[deploy.pk]), {"stop": "1"})
    assert response.status_code == 302
    deploy = wait_for_deploy(deploy.pk, celery_worker, timeout=30)

    assert time.monotonic() - asked < 30, "stopped at once, not after the 600 s restart_timeout"
    assert deploy.status == DeployStatus.CANCELLED, deploy.reason
    assert deploy.reason == (
        "cancelled by dana after 1 of 2 hosts; on the new release: 127.0.0.11; still on the previous one: "
        "127.0.0.12; stopped in the middle of a command: 127.0.0.11 (check them: roll back, or deploy again)"
    )
    assert not running("sleep 43.5"), "the remote process group was stopped"
    assert (host_root(environment, 1) / "current").readlink().name == str(first.pk), "the next host never switched"
    logged = list(deploy.log_lines.values_list("message", flat=True))
    assert "cancel requested by dana: stopping the commands running on hosts now" in logged


def test_an_upload_to_a_host_that_reads_slowly_waits_for_it(sshd_processes: list[SshdHost], tmp_path: Path) -> None:
    """The upload may wait on the host far longer than the one-second tick that asks whether to stop."""
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(8 * 1024 * 1024))  # far beyond SSH's window: the sender must wait for the reader
    host = sshd_processes[0]
    conn = ssh.open_connection(ssh.Target(host.address, host.port, host.user), [HostKey.of(host.host_key())])
    lines: list[str] = []
    try:
        ssh.run(conn, "sleep 3; wc -c | tr -d ' '", timeout=30, output=lines.append, stdin=[big], stop=lambda: False)
    finally:
        conn.close()
    assert lines == [str(8 * 1024 * 1024)]
