"""Branch names are user input: hostile ones never reach a shell unquoted."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.urls import reverse

from deployer.choices import DeployStatus
from deployer.demo.hosts import SshdHost
from deployer.demo.setup import repo_branch
from deployer.deploys.request import deploy_request
from deployer.models import Deploy, Environment
from deployer.sources.branches import branch_sync
from tests.support.catalogs import AppRepo, MakeEnvironment
from tests.support.waiting import wait_for_deploy
from tests.support.worker import Worker

pytestmark = pytest.mark.one_backend  # the database backend makes no difference here

CANARY = settings.VAR_DIR / "canary" / "pwned"

# Valid git branch names (git check-ref-format accepts them) that would run
# `touch CANARY` if any of them reached a shell unquoted.
HOSTILE_BUT_VALID = [
    f"x;touch${{IFS}}{CANARY}",
    f"x$(touch${{IFS}}{CANARY})",
    f"x`touch${{IFS}}{CANARY}`",
    f"x'\";touch${{IFS}}{CANARY};\"'",
    f"x|touch${{IFS}}{CANARY}",
    f"x&&touch${{IFS}}{CANARY}",
]

# Names git itself refuses: Gantry refuses them with the rule they break.
REFUSED = {
    "feature x": "contains a space",
    f"x\ntouch {CANARY}": "control character",
    "-x": "starts with '-'",
    "--upload-pack=touch": "starts with '-'",
    "a..b": "contains '..'",
    "x:y": "contains ':'",
    "": "",
}


@pytest.mark.slow
def test_hostile_branch_names_deploy_safely(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    ssh_hosts: list[SshdHost],
    app_repo: AppRepo,
) -> None:
    CANARY.parent.mkdir(exist_ok=True)
    for name in HOSTILE_BUT_VALID:
        repo_branch(app_repo.path, name, {"greeting.txt": "hostile\n"}, "A branch with a hostile name")
    environment = make_environment(hosts=ssh_hosts[:1])
    branch_sync(service=environment.service)

    for name in HOSTILE_BUT_VALID:
        deploy = wait_for_deploy(deploy_request(environment=environment, ref=name, user=deployer).pk, celery_worker)
        assert deploy.status == DeployStatus.SUCCEEDED, deploy.reason
        log = "\n".join(deploy.log_lines.values_list("message", flat=True))
        assert f"built {deploy.sha} ({name})" in log, "the build saw the exact name, not a re-parsed one"
        assert not CANARY.exists(), f"{name!r} ran a command"


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "reason"), REFUSED.items())
def test_names_git_refuses_are_refused_with_the_rule(
    deployer_client: Client, environment: Environment, name: str, reason: str
) -> None:
    response = deployer_client.post(reverse("deploy-create", args=["app", "test"]), {"ref": name})

    assert response.status_code == 400
    assert reason in response.content.decode().replace("&#x27;", "'")
    assert not Deploy.objects.exists()
    assert not Path(CANARY).exists()
