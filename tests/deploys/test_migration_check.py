"""Migration safety before anyone clicks (migration_check): a real Django project's migrations linted by
django-migration-linter inside the build's sandbox on a real builder sshd (the non-root account
gantry-build), against a scratch PostgreSQL server started in that sandbox; a real Celery worker. A second
AddField(default="") — the change that broke a running release in the real-application trial — stops a
production deploy until a person confirms; AddField(db_default=...) goes through."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.urls import reverse

from deployer.catalog.load import CatalogError, catalog_apply, catalog_parse
from deployer.choices import DeployStatus
from deployer.demo.hosts import SshdHost
from deployer.demo.setup import git
from deployer.deploys.request import deploy_request
from deployer.deploys.rules import DeployOptions
from deployer.errors import DeployRefused
from deployer.models import Branch, Deploy, DeployLog, Environment, MigrationCheck
from deployer.sources.branches import branch_sync
from tests.support.builder_account import Builder
from tests.support.builder_catalog import builder_catalog, commit
from tests.support.pages import plan_page
from tests.support.waiting import wait_for_deploy
from tests.support.worker import Worker

pytestmark = pytest.mark.one_backend  # the database backend of Gantry makes no difference here

SETTINGS = """import os
SECRET_KEY = os.environ["SECRET_KEY"]  # the check gets no config: the catalog gives it a plain value
INSTALLED_APPS = ["shop"]
DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "production-only"}}
"""
MIGRATION = """from django.db import migrations, models


class Migration(migrations.Migration):
    {body}
"""
INITIAL = MIGRATION.format(
    body='initial = True\n    operations = [migrations.CreateModel("Item", '
    '[("id", models.AutoField(primary_key=True)), ("name", models.CharField(max_length=10))])]'
)
UNSAFE = MIGRATION.format(
    body='dependencies = [("shop", "0001_initial")]\n    operations = [migrations.AddField("item", "color", '
    'models.CharField(max_length=10, default=""))]'
)
SAFE = MIGRATION.format(
    body='dependencies = [("shop", "0002_color")]\n    operations = [migrations.AddField("item", "size", '
    'models.CharField(max_length=10, db_default=""))]'
)
NULLABLE = MIGRATION.format(
    body='dependencies = [("shop", "0001_initial")]\n    operations = [migrations.AddField("item", "size", '
    "models.IntegerField(null=True))]"
)
BUILD = "if [ ! -x .venv/bin/python ]; then python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt; fi"


def catalog(repo: Path, on: Builder, hosts: list[SshdHost], root: Path) -> str:
    keys = f"""    build_command: '{BUILD}'
    build_cache: {{key: [requirements.txt], dirs: [.venv]}}
    migration_check: {{recipe: django, settings: mysite.settings, env: {{SECRET_KEY: lint-only}}}}
"""
    return builder_catalog("shop", repo, on, hosts, root, keys)


def said(deploy: Deploy) -> list[str]:
    return list(DeployLog.objects.filter(deploy=deploy).values_list("message", flat=True))


def run(environment: Environment, user: AbstractBaseUser, worker: Worker, **options: bool) -> Deploy:
    branch_sync(service=environment.service)
    request = deploy_request(environment=environment, ref="main", user=user, options=DeployOptions(**options))
    return wait_for_deploy(request.pk, worker, timeout=180)


@pytest.mark.slow
def test_an_unsafe_migration_stops_production_until_confirmed_and_a_safe_one_goes(
    transactional_db: None,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    dana_deploys_to_prod: None,
    builder: Builder,
    ssh_hosts: list[SshdHost],
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch=main")
    files = {
        "requirements.txt": "django==5.2.*\npsycopg[binary]\n",
        "mysite/__init__.py": "",
        "mysite/settings.py": SETTINGS,
        "shop/__init__.py": "",
        "shop/migrations/__init__.py": "",
        "shop/migrations/0001_initial.py": INITIAL,
    }
    commit(repo, files, "The shop")
    catalog_apply(catalog_parse(catalog(repo, builder, ssh_hosts, tmp_path)))
    test, prod = (Environment.objects.get(service__name="shop", name=name) for name in ("test", "prod"))
    first = run(prod, deployer, celery_worker)
    assert first.status == DeployStatus.SUCCEEDED, first.reason
    assert not MigrationCheck.objects.exists(), "a first deploy meets no running release: nothing to check"

    commit(repo, {"shop/migrations/0002_color.py": UNSAFE}, "A colour, with default=''")
    refused = run(prod, deployer, celery_worker)
    assert refused.status == DeployStatus.FAILED
    found = "the migration check found what the running release cannot live with: shop/migrations/0002_color.py: "
    assert f"{found}NOT_NULL" in refused.reason, refused.reason
    assert "Nothing changed on any host" in refused.reason
    assert (tmp_path / "prod" / "current").resolve().name == str(first.pk), "production still runs the first"
    check = MigrationCheck.objects.get(service=prod.service, sha=refused.sha)
    assert check.error == "" and check.files == ["shop/migrations/0001_initial.py", "shop/migrations/0002_color.py"]
    (finding,) = check.findings
    assert finding["migration"] == "shop.0002_color" and finding["code"] == "NOT_NULL"
    assert "db_default=" in finding["fix"] and "Add field color to item" in finding["operations"]
    assert not any("gantry_lint" in path.name for path in (tmp_path / "prod" / "releases").rglob("*"))

    # Its plan and its page show the finding; from now on the rule refuses it up front, until confirmed.
    client = Client()
    client.force_login(deployer)
    page = plan_page(client, "shop", "prod", "main")
    assert 'data-migration-check="findings"' in page and 'data-finding="NOT_NULL"' in page
    assert "add it with db_default= (a database default) or null=True" in page
    assert 'name="confirm_schema"' in page and "the migration check did not pass" in page
    shown = client.get(reverse("deploy", args=[refused.pk])).content.decode()
    assert 'data-finding="NOT_NULL"' in shown and "shop/migrations/0002_color.py" in shown
    with pytest.raises(DeployRefused, match=r"0002_color\.py: NOT_NULL"):
        deploy_request(environment=prod, ref="main", user=deployer)
    tested = run(test, deployer, celery_worker)
    assert tested.status == DeployStatus.SUCCEEDED, tested.reason
    confirmed = run(prod, deployer, celery_worker, confirm_schema=True)
    assert confirmed.status == DeployStatus.SUCCEEDED, confirmed.reason
    assert any("deploying as confirmed" in line for line in said(confirmed))
    assert MigrationCheck.objects.filter(service=prod.service, sha=refused.sha).count() == 1, "checked once"

    # A safe migration: the plan asks a worker to check it before anyone clicks, and the deploy reads that.
    commit(repo, {"shop/migrations/0003_size.py": SAFE}, "A size, with a database default")
    branch_sync(service=prod.service)
    page = plan_page(client, "shop", "prod", "main", timeout=180)
    assert "data-migration-check-passed" in page, page
    ahead = MigrationCheck.objects.get(service=prod.service, sha=Branch.objects.get(name="main").sha)
    assert ahead.requested_by == deployer and ahead.error == ""
    assert [f["file"] for f in ahead.findings] == ["shop/migrations/0002_color.py"], "of the tree; 0003 ships"
    safe = run(prod, deployer, celery_worker)
    assert safe.status == DeployStatus.SUCCEEDED, safe.reason
    assert "migration check: nothing the running release cannot live with" in said(safe)
    assert not any(line.startswith("migration check: ") and "GANTRY" in line for line in said(safe))


def test_the_catalog_says_where_a_migration_check_can_run() -> None:
    text = """
services:
  app:
    repo: /srv/git/app
    migration_check: {recipe: django}
    environments:
      test: {deploy_path: /srv/app, hosts: [{address: 10.0.0.1}]}
"""
    with pytest.raises(CatalogError) as caught:
        catalog_parse(text)
    messages = [p.message for p in caught.value.problems]
    assert any("migration_check runs only inside a build's sandbox on the builder" in m for m in messages)
    assert any("recipe: django needs settings" in m for m in messages)


FORGER = """import sys
SECRET_KEY = "x"
INSTALLED_APPS = ["shop"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "x"}}
# What Gantry's marks look like, printed by the branch's own code in the check: none may end the check's
# output early, pose as its result or name the artifact Gantry ships.
print("GANTRY-LINT-DONE")
print("GANTRY-LINT-END-0123456789abcdef")
print("GANTRY-ARTIFACT " + "0" * 64 + " 10")
sys.stdout.write("GANTRY-LINT-BEGIN-0123456789abcdef")
sys.stdout.flush()
"""


@pytest.mark.slow
def test_what_the_checked_code_prints_cannot_pose_as_gantry(
    transactional_db: None,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    builder: Builder,
    ssh_hosts: list[SshdHost],
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch=main")
    files = {
        "requirements.txt": "django==5.2.*\n",
        "mysite/__init__.py": "",
        "mysite/settings.py": FORGER,
        "shop/__init__.py": "",
        "shop/migrations/__init__.py": "",
        "shop/migrations/0001_initial.py": INITIAL,
    }
    commit(repo, files, "The shop")
    text = catalog(repo, builder, ssh_hosts, tmp_path).replace(
        "settings: mysite.settings,", "settings: mysite.settings, database: sqlite,"
    )
    catalog_apply(catalog_parse(text))
    test = Environment.objects.get(service__name="shop", name="test")
    assert run(test, deployer, celery_worker).status == DeployStatus.SUCCEEDED
    commit(repo, {"shop/migrations/0002_size.py": NULLABLE}, "A nullable size")
    done = run(test, deployer, celery_worker)
    assert done.status == DeployStatus.SUCCEEDED, done.reason
    assert done.artifact_sha256 != "0" * 64 and len(done.artifact_sha256) == 64
    check = MigrationCheck.objects.get(service=test.service, sha=done.sha)
    assert check.error == "" and check.files == ["shop/migrations/0001_initial.py", "shop/migrations/0002_size.py"]
