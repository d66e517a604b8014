"""`manage.py deploy`, run as a person would run it: a process of its own, a real worker doing the deploy."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.contrib.auth.models import AbstractBaseUser

from deployer.choices import DeployStatus
from deployer.models import Deploy
from tests.conftest import MakeEnvironment
from tests.support.worker import BASE_DIR, Worker, database_url

pytestmark = pytest.mark.slow


def gantry(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": database_url()}
    command = [sys.executable, "manage.py", "deploy", *args]
    return subprocess.run(command, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)


def test_deploy_and_wait_prints_progress_and_exits_zero(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser
) -> None:
    make_environment()
    done = gantry("app", "main", "--env", "test", "--as", "dana", "--wait")

    assert done.returncode == 0, done.stdout + done.stderr
    deploy = Deploy.objects.get()
    assert deploy.status == DeployStatus.SUCCEEDED and deploy.requested_by == deployer
    lines = done.stdout.splitlines()
    assert lines[0] == f"deploy #{deploy.pk}: main ({deploy.sha[:12]}) of app to test, queued"
    assert sum("staging" in line for line in lines) == 3, "each host's progress"
    assert lines[-1].startswith(f"deploy #{deploy.pk} succeeded in ")


def test_a_failed_deploy_exits_one_and_a_refused_request_two(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser
) -> None:
    make_environment()
    failed = gantry("app", "broken-build", "--as", "dana", "--wait")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "compiler says no" in failed.stdout and "failed" in failed.stderr

    unknown = gantry("app", "no-such-branch", "--as", "dana")
    assert unknown.returncode == 2 and "app has no branch 'no-such-branch'" in unknown.stderr
    nobody = gantry("app", "main", "--as", "ghost")
    assert nobody.returncode == 2 and "no active Gantry user 'ghost'" in nobody.stderr
    anonymous = gantry("app", "main")
    assert anonymous.returncode == 2 and "say who deploys" in anonymous.stderr
    elsewhere = gantry("app", "main", "--env", "prod", "--as", "dana")
    assert elsewhere.returncode == 2 and "app has no environment 'prod'; it has: test" in elsewhere.stderr
    assert Deploy.objects.count() == 1
