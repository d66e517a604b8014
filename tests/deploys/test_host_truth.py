"""The host table never lies: after a switch or a rollback it shows where `current` really points (read on
the host), and a rollback failing the same health check says the check is suspect. A real worker, real sshd
hosts, the demo application."""

from __future__ import annotations

import os

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.urls import reverse

from deployer.choices import DeployStatus, HostStatus
from deployer.demo.hosts import SshdHost
from deployer.deploys.request import deploy_request
from deployer.models import Deploy, DeployHost, Environment
from tests.support.catalogs import MakeEnvironment
from tests.support.waiting import wait_for_deploy
from tests.support.worker import Worker

pytestmark = pytest.mark.one_backend  # the database backend makes no difference here


def deployed(environment: Environment, user: AbstractBaseUser, worker: Worker) -> Deploy:
    return wait_for_deploy(deploy_request(environment=environment, ref="main", user=user).pk, worker)


@pytest.mark.slow
def test_a_broken_health_check_fails_the_rollback_too_and_the_host_table_shows_what_runs(
    make_environment: MakeEnvironment,
    ssh_hosts: list[SshdHost],
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
) -> None:
    environment = make_environment(ssh_hosts[:1], health_timeout=2)
    first = deployed(environment, deployer, celery_worker)
    assert first.status == DeployStatus.SUCCEEDED, first.reason
    assert DeployHost.objects.get(deploy=first).current == first.release_name, "read back after the switch"

    # The check breaks (a wrong path): the new release fails it, and so does the one that ran fine.
    url = environment.health_check_url.replace("/healthz", "/no-such-page")
    Environment.objects.filter(pk=environment.pk).update(health_check_url=url)
    broken = deployed(environment, deployer, celery_worker)

    assert broken.status == DeployStatus.FAILED
    assert "and the rollback failed too" in broken.reason
    assert "The previous release fails the same health check too: the check itself is suspect" in broken.reason
    row = DeployHost.objects.get(deploy=broken)
    root = environment.hosts.get().path
    assert os.readlink(f"{root}/current") == f"releases/{first.release_name}"
    assert row.status == HostStatus.FAILED and row.current == first.release_name, "what the host really runs"
    page = deployer_client.get(reverse("deploy", args=[broken.pk])).content.decode()
    assert f'data-current="{first.release_name}"' in page


CRASHES = "'sleep 1 & echo $! > \"$GANTRY_DEPLOY_PATH/shared/w.pid\"'"
ALIVE = '\'kill -0 "$(cat "$GANTRY_DEPLOY_PATH/shared/w.pid")"\''


@pytest.mark.slow
def test_a_process_that_dies_a_second_after_it_starts_fails_healthy_for(
    make_environment: MakeEnvironment,
    ssh_hosts: list[SshdHost],
    celery_worker: Worker,
    deployer: AbstractBaseUser,
) -> None:
    options: dict[str, str | None] = {
        "restart_command": CRASHES,
        "health_check_url": None,
        "health_check_command": ALIVE,
        "on_failure": "stop",
    }
    environment = make_environment(ssh_hosts[:1], options=options)
    fooled = deployed(environment, deployer, celery_worker)
    assert fooled.status == DeployStatus.SUCCEEDED, "a pid that exists passes at once: what healthy_for is for"

    Environment.objects.filter(pk=environment.pk).update(healthy_for=3)
    caught = deployed(environment, deployer, celery_worker)
    assert caught.status == DeployStatus.FAILED
    assert "health_check_command passed, then failed" in caught.reason and "(healthy_for: 3)" in caught.reason
