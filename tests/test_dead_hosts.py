"""Hosts die: a deploy goes on without a dead host only when the catalog allows that many unreachable hosts
or a person says so with a reason; the host is recorded skipped and shown behind. Real sshd hosts (and an
address where nothing listens), a real Celery worker."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.urls import reverse

from deployer.choices import AuditAction, DeployStatus, HostStatus
from deployer.demo.hosts import SshdHost
from deployer.deploys.request import deploy_request
from deployer.deploys.rules import DeployOptions
from deployer.errors import DeployRefused
from deployer.models import AuditEntry, Deploy, Environment
from tests.conftest import MakeEnvironment, free_port, wait_for_deploy
from tests.support.worker import Worker

pytestmark = pytest.mark.one_backend  # the database backend makes no difference here


@pytest.fixture
def dead(tmp_path: Path) -> SshdHost:
    return SshdHost(tmp_path / "dead", "127.0.0.15", free_port("127.0.0.15"))  # nothing listens there


def live_release(environment: Environment, index: int) -> str:
    root = Path(environment.hosts.all()[index].path)
    return str((root / "current").readlink())


def test_the_catalog_may_allow_an_unreachable_host_which_is_then_left_behind(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
    ssh_hosts: list[SshdHost],
    dead: SshdHost,
) -> None:
    environment = make_environment(hosts=[ssh_hosts[0], dead, ssh_hosts[1]], options={"unreachable_hosts": "1"})

    deploy = wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)

    assert deploy.status == DeployStatus.SUCCEEDED, deploy.reason
    assert deploy.reason.startswith("succeeded without 127.0.0.15 (unreachable; left behind)")
    gone = deploy.hosts.get(address__contains="127.0.0.15")
    assert gone.status == HostStatus.SKIPPED
    assert gone.message.startswith("unreachable, left behind (the catalog allows 1 unreachable host): stage failed")
    assert [live_release(environment, i) for i in (0, 2)] == [f"releases/{deploy.pk}"] * 2
    matrix = deployer_client.get(reverse("services")).content.decode()
    assert "data-behind" in matrix and ">1 behind</span>" in matrix and "127.0.0.15" in matrix
    service = deployer_client.get(reverse("service", args=["app"])).content.decode()
    assert "Behind (the release that runs here never reached them)" in service and "unreachable, left behind" in service


def test_a_person_deploys_without_a_dead_host_saying_why(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
    ssh_hosts: list[SshdHost],
    dead: SshdHost,
) -> None:
    environment = make_environment(hosts=[ssh_hosts[0], dead])
    refused = wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)
    assert refused.status == DeployStatus.FAILED
    assert refused.reason.endswith(
        "To deploy without 127.0.0.15: tick it under 'Deploy without some hosts' on the plan page and say why, or "
        "let the catalog allow it (unreachable_hosts: 1 on environment test)"
    )
    plan = deployer_client.get(reverse("deploy-plan", args=["app", "test"]), {"ref": "main"}).content.decode()
    name = str(environment.hosts.get(address="127.0.0.15"))
    assert f'name="skip_host" value="{name}"' in plan

    url = reverse("deploy-create", args=["app", "test"])
    short = deployer_client.post(url, {"ref": "main", "skip_host": name, "skip_reason": "dead"})
    assert short.status_code == 400 and f"say why you deploy without {name} (at least 10 characters)" in (
        short.content.decode()
    )
    asked = deployer_client.post(url, {"ref": "main", "skip_host": name, "skip_reason": "disk died, replacing it"})
    assert asked.status_code == 302, asked.content.decode()[:500]
    deploy = wait_for_deploy(Deploy.objects.latest("pk").pk, celery_worker)

    assert deploy.status == DeployStatus.SUCCEEDED, deploy.reason
    assert deploy.reason.startswith(f"deployed without {name}, as asked: disk died, replacing it")
    gone = deploy.hosts.get(address=name)
    assert (gone.status, gone.message) == (
        HostStatus.SKIPPED,
        "deployed without it, as dana asked: disk died, replacing it",
    )
    assert live_release(environment, 0) == f"releases/{deploy.pk}"
    entry = AuditEntry.objects.filter(action=AuditAction.DEPLOY_REQUESTED, deploy_id=deploy.pk).get()
    assert entry.detail.endswith(f"; without {name}: disk died, replacing it")


def test_what_a_person_may_leave_out_is_checked(environment: Environment, deployer: AbstractBaseUser) -> None:
    def ask(*hosts: str, reason: str = "the host is being replaced") -> Deploy:
        options = DeployOptions(skip_hosts=hosts, skip_reason=reason)
        return deploy_request(environment=environment, ref="main", user=deployer, options=options)

    with pytest.raises(DeployRefused, match=r"'10\.9\.9\.9' is not one host of app/test; its hosts: "):
        ask("10.9.9.9")
    every = [host.address for host in environment.hosts.all()]
    with pytest.raises(DeployRefused, match="a deploy without every host of app/test would deploy nothing"):
        ask(*every)
    assert not Deploy.objects.exists(), "nothing recorded"
