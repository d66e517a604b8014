"""A deploy's log keeps its beginning and its end: a long build that fails says why at the end, and that end
is what a person reads first. A real worker, a real sshd host, a build printing 20,000 lines."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.urls import reverse

from deployer.choices import DeployStatus
from deployer.demo.hosts import SshdHost
from deployer.deploys.request import deploy_request
from deployer.models import DeployLog
from tests.support.catalogs import MakeEnvironment
from tests.support.waiting import wait_for_deploy
from tests.support.worker import Worker

pytestmark = pytest.mark.one_backend  # the database backend makes no difference here

LOUD = "'seq 1 20000 | sed s/^/line-/; echo \"the real error: disk full\"; exit 3'"


@pytest.mark.slow
def test_a_long_failing_build_keeps_its_beginning_and_its_end(
    make_environment: MakeEnvironment,
    ssh_hosts: list[SshdHost],
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
) -> None:
    environment = make_environment(ssh_hosts[:1], options={"build_command": LOUD})
    deploy = wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)

    assert deploy.status == DeployStatus.FAILED
    kept = list(DeployLog.objects.filter(deploy=deploy).order_by("pk").values_list("message", flat=True))
    # The cap (GANTRY_DEPLOY_LOG_MAX_LINES, 5000) is the handler's; the final status line is the lifecycle's own.
    assert len(kept) <= 5001 and deploy.log_lines_dropped + len(kept) > 20000, (len(kept), deploy.log_lines_dropped)
    assert kept[0].startswith("status: queued") and "line-1" in kept
    assert "the real error: disk full" in kept and "line-20000" in kept, "the end of the build is kept"
    assert kept[-1].startswith("status: running → failed")
    page = deployer_client.get(reverse("deploy", args=[deploy.pk])).content.decode()
    assert "from the middle of this log were not kept (log limit): its beginning and its end are" in page
    text = deployer_client.get(reverse("deploy-log-text", args=[deploy.pk])).content.decode()
    lines = text.splitlines()
    assert lines[0] == f"# deploy #{deploy.pk}: app test main" and "from its middle were not kept" in lines[1]
    assert "the real error: disk full" in text and lines[-1].endswith(kept[-1].splitlines()[-1])
