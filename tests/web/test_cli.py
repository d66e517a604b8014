"""`manage.py deploy`, an operator's command on the server: it acts only as a superuser (people use the
`gantry` CLI with their own token: tests/web/test_gantry_cli.py). A process of its own, a real worker."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser

from deployer.choices import DeployStatus
from deployer.models import Deploy
from tests.support.catalogs import MakeEnvironment
from tests.support.worker import BASE_DIR, Worker, database_url

pytestmark = pytest.mark.slow


def manage_deploy(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": database_url()}
    command = [sys.executable, "manage.py", "deploy", *args]
    return subprocess.run(command, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)


def test_a_superuser_deploys_and_waits_and_no_one_else_can_be_named(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser
) -> None:
    make_environment()
    ops = get_user_model().objects.create_superuser("ops", "ops@example.com", "a-long-password")
    impersonated = manage_deploy("app", "main", "--env", "test", "--as", "dana")
    assert impersonated.returncode == 2 and "dana is not a superuser" in impersonated.stderr
    assert "gantry login" in impersonated.stderr and not Deploy.objects.exists()

    done = manage_deploy("app", "main", "--env", "test", "--as", "ops", "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    deploy = Deploy.objects.get()
    assert deploy.status == DeployStatus.SUCCEEDED and deploy.requested_by == ops
    lines = done.stdout.splitlines()
    assert lines[0] == f"deploy #{deploy.pk}: main ({deploy.sha[:12]}) of app to test, queued"
    assert sum("staging" in line for line in lines) == 3, "each host's progress"
    assert lines[-1].startswith(f"deploy #{deploy.pk} succeeded in ")

    unknown = manage_deploy("app", "no-such-branch", "--as", "ops")
    assert unknown.returncode == 2 and "app has no branch 'no-such-branch'" in unknown.stderr
    nobody = manage_deploy("app", "main", "--as", "ghost")
    assert nobody.returncode == 2 and "no active Gantry user 'ghost'" in nobody.stderr
    anonymous = manage_deploy("app", "main")
    assert anonymous.returncode == 2 and "say who deploys" in anonymous.stderr
    assert Deploy.objects.count() == 1
