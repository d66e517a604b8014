"""Deploys end to end: a real Celery worker rolls releases out to real sshd hosts."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import requests
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.urls import reverse

from deployer import tasks
from deployer.choices import DeployStatus, HostStatus
from deployer.demo.hosts import SshdHost
from deployer.deploys.request import deploy_request
from deployer.models import Deploy, Environment
from tests.support.catalogs import MakeEnvironment
from tests.support.deploys import deploy_and_wait, head, host_root
from tests.support.net import free_port
from tests.support.waiting import wait_for_deploy, wait_until
from tests.support.worker import Worker

pytestmark = pytest.mark.slow


def test_it_deploys_one_commit_to_three_hosts(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer_client: Client,
    deployer: AbstractBaseUser,
    app_port: int,
) -> None:
    environment = make_environment()
    response = deployer_client.post(reverse("deploy-create", args=["app", "test"]), {"ref": "main"})
    assert response.status_code == 302
    deploy = Deploy.objects.get()
    assert response["Location"] == reverse("deploy", args=[deploy.pk])
    assert deploy.sha == head(environment, "main")

    deploy = wait_for_deploy(deploy.pk, celery_worker)

    assert deploy.status == DeployStatus.SUCCEEDED, deploy.reason
    assert deploy.requested_by == deployer
    assert [h.status for h in deploy.hosts.all()] == [HostStatus.LIVE] * 3
    for index, host in enumerate(environment.hosts.all()):
        root = host_root(environment, index)
        assert os.readlink(root / "current") == f"releases/{deploy.pk}"
        assert (root / "releases" / str(deploy.pk) / "REVISION").read_text().strip() == deploy.sha
        assert (root / "releases" / str(deploy.pk) / "app.py").is_file()
        assert (root / "releases" / str(deploy.pk) / "__pycache__").is_dir(), "the build command ran"
        assert sorted(p.name for p in (root / "releases").iterdir()) == [str(deploy.pk)]
        version = requests.get(f"http://{host.address}:{app_port}/version", timeout=5).json()
        assert version["sha"] == deploy.sha
    history = deployer_client.get(reverse("history")).content.decode()
    assert f"#{deploy.pk}" in history and deploy.sha[:8] in history and "dana" in history
    # The worker's log names the deploy on its lines, those from the per-host threads included.
    lines = [line for line in celery_worker.log().splitlines() if f" deploy={deploy.pk} " in line]
    assert any("status: queued → running" in line for line in lines)
    assert sum(f"staging {deploy.sha[:12]}" in line for line in lines) == 3, lines


def test_the_second_deploy_records_the_previous_sha_and_release(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser
) -> None:
    environment = make_environment()
    first = deploy_and_wait(environment, "main", deployer, celery_worker)
    second = deploy_and_wait(environment, "feature/shout", deployer, celery_worker)

    assert second.status == DeployStatus.SUCCEEDED, second.reason
    assert second.previous_sha == first.sha
    assert {h.previous_release for h in second.hosts.all()} == {str(first.pk)}
    assert os.readlink(host_root(environment, 0) / "current") == f"releases/{second.pk}"


def test_a_failing_build_fails_and_leaves_current_unchanged_everywhere(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser
) -> None:
    environment = make_environment()
    good = deploy_and_wait(environment, "main", deployer, celery_worker)

    bad = deploy_and_wait(environment, "broken-build", deployer, celery_worker)

    assert bad.status == DeployStatus.FAILED
    assert "127.0.0.11: stage failed: exited with status 3" in bad.reason
    assert "compiler says no" in "\n".join(bad.log_lines.values_list("message", flat=True))
    for index in range(3):
        assert os.readlink(host_root(environment, index) / "current") == f"releases/{good.pk}"


def test_a_failing_health_check_fails_naming_the_host_and_the_http_status(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser
) -> None:
    environment = make_environment(health_timeout=2)

    deploy = deploy_and_wait(environment, "broken-health", deployer, celery_worker)

    assert deploy.status == DeployStatus.FAILED
    assert deploy.reason.startswith("127.0.0.11: activate failed: health check http://127.0.0.11:")
    assert "last: HTTP 500" in deploy.reason
    assert deploy.hosts.get(address__contains="127.0.0.11").status == HostStatus.FAILED


def test_an_unreachable_host_fails_the_deploy_before_any_host_switches(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    ssh_hosts: list[SshdHost],
    tmp_path: Path,
) -> None:
    dead = SshdHost(tmp_path / "dead", "127.0.0.15", free_port("127.0.0.15"))  # nothing listens there
    environment = make_environment(hosts=[ssh_hosts[0], dead])

    deploy = deploy_and_wait(environment, "main", deployer, celery_worker)

    assert deploy.status == DeployStatus.FAILED
    assert deploy.reason.startswith(f"127.0.0.15: stage failed: cannot connect to root@127.0.0.15:{dead.port}")
    assert not (host_root(environment, 0) / "current").exists(), "the reachable host was staged, never switched"


def test_a_hung_build_is_stopped_on_the_host_after_the_command_timeout(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, ssh_hosts: list[SshdHost]
) -> None:
    environment = make_environment(hosts=ssh_hosts[:1], command_timeout=2)
    started = time.monotonic()

    deploy = deploy_and_wait(environment, "slow-build", deployer, celery_worker)

    assert deploy.status == DeployStatus.FAILED
    assert deploy.reason == "127.0.0.11: stage failed: still running after 2 s; stopped"
    time.sleep(max(0.0, started + 6 - time.monotonic()))  # past the moment the build would have finished
    assert not (host_root(environment, 0) / "shared" / "build-finished").exists(), "the remote build was killed"


def test_a_redelivered_message_does_not_roll_out_twice(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser
) -> None:
    environment = make_environment()
    deploy = deploy_request(environment=environment, ref="main", user=deployer)
    tasks.run_deploy.delay(deploy.pk)  # as if the broker delivered the job again

    deploy = wait_for_deploy(deploy.pk, celery_worker)
    assert deploy.status == DeployStatus.SUCCEEDED, deploy.reason
    wait_until(lambda: deploy.log_lines.filter(message__startswith="another delivery").exists())

    assert deploy.log_lines.filter(message="status: queued → running").count() == 1
    assert deploy.hosts.count() == 3
    tasks.run_deploy.delay(deploy.pk)  # and once more after it finished
    wait_until(lambda: deploy.log_lines.filter(message__startswith="another delivery").count() == 2)
    deploy.refresh_from_db()
    assert deploy.status == DeployStatus.SUCCEEDED
    assert deploy.hosts.count() == 3


def test_old_releases_are_pruned_by_deploy_history(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser
) -> None:
    environment = make_environment(hosts=None, releases_to_keep=2)
    ids = [deploy_and_wait(environment, ref, deployer, celery_worker).pk for ref in ["main", "feature/shout", "main"]]

    def kept() -> list[int]:
        return sorted(int(p.name) for p in (host_root(environment, 0) / "releases").iterdir())

    wait_until(lambda: kept() == ids[1:])  # pruning runs after the deploy's end is recorded


def test_the_switch_shares_the_restarts_session_and_a_failed_switch_restarts_nothing(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, tmp_path: Path
) -> None:
    marker = tmp_path / "restarted"
    environment = make_environment(options={"batch_size": "1"})
    record = f'readlink "$GANTRY_DEPLOY_PATH/current" >> {marker}'
    Environment.objects.filter(pk=environment.pk).update(restart_command=f"{environment.restart_command}\n{record}")
    first = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert first.status == DeployStatus.SUCCEEDED, first.reason
    assert marker.read_text().split() == [f"releases/{first.pk}"] * 3, "each restart saw its new current"

    root = host_root(environment, 0)
    (root / "current").unlink()
    (root / "current").mkdir()
    (root / "current" / "kept").write_text("a directory where the symlink was\n")
    second = deploy_and_wait(environment, "main", deployer, celery_worker)

    assert second.status == DeployStatus.FAILED
    assert "127.0.0.11: activate failed: switching current failed: exited with status 1" in second.reason
    assert marker.read_text().split().count(f"releases/{second.pk}") == 0, "no host restarted on the new release"
