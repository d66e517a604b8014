"""Schema-aware rollback: the migration files a deploy ships are listed on the plan and the deploy page, and a
rollback across them is refused (API, Slack) or asks (page) until a person confirms, which is recorded.
Real sshd hosts, a real Celery worker, a real migration step."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.urls import reverse

from deployer.catalog.load import catalog_apply, catalog_parse
from deployer.chatops import ROLLBACK, action_run
from deployer.choices import AuditAction, DeployStatus
from deployer.demo import setup
from deployer.deploys.config import config_changes
from deployer.deploys.request import deploy_rollback
from deployer.environments.locks import environment_unlock
from deployer.models import AuditEntry, ChangeSet, Deploy, Environment, Service
from deployer.sources.changes import DEFAULT_MIGRATIONS, migrations_in
from tests.fakes.slack import FakeSlack
from tests.support.api import api, post
from tests.support.catalogs import AppRepo, MakeEnvironment
from tests.support.deploys import current_release, deploy_and_wait
from tests.support.pages import plan_page
from tests.support.shop import release_options
from tests.support.slack import answer, send
from tests.support.waiting import wait_for_deploy
from tests.support.worker import Worker


@pytest.mark.slow
def test_a_rollback_across_migrations_asks_and_records_the_confirmation(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
    shop: dict[str, Path],
) -> None:
    options = release_options(shop, release_command='"test ! -e migrate.py || python3 migrate.py"')
    environment = make_environment(options=options)
    first = deploy_and_wait(environment, "main", deployer, celery_worker)
    plan = plan_page(deployer_client, "app", "test", "migrations")
    assert "data-migrations" in plan and "<code>migrations/0001_items.sql</code>" in plan

    migrated = deploy_and_wait(environment, "migrations", deployer, celery_worker)

    assert migrated.status == DeployStatus.SUCCEEDED, migrated.reason
    assert migrated.migrations == [{"change": "A", "path": "migrations/0001_items.sql"}]
    page = deployer_client.get(reverse("deploy", args=[migrated.pk])).content.decode()
    assert "<code>migrations/0001_items.sql</code>" in page

    refused = post(api(deployer), "/api/v1/services/app/test/rollback", {"to": first.pk})
    assert refused.status_code == 409
    assert refused.json()["error"].startswith(
        f"rolling back to deploy #{first.pk} goes back across schema changes: deploy #{migrated.pk} (migrations, "
        f"{migrated.sha[:8]}) shipped migrations/0001_items.sql. "
    )
    asked = deployer_client.post(reverse("deploy-rollback", args=["app", "test"]), {"to": first.pk})
    assert asked.status_code == 409
    assert "data-rollback-confirm" in asked.content.decode() and "migrations/0001_items.sql" in asked.content.decode()
    assert not Deploy.objects.filter(rollback_of=first).exists(), "nothing was started"

    confirmed = deployer_client.post(
        reverse("deploy-rollback", args=["app", "test"]), {"to": first.pk, "confirm_schema": "on"}
    )
    assert confirmed.status_code == 302
    rollback = wait_for_deploy(Deploy.objects.get(rollback_of=first).pk, celery_worker)

    assert rollback.status == DeployStatus.SUCCEEDED, rollback.reason
    recorded = (
        f"rolled back across schema changes, confirmed by dana: deploy #{migrated.pk} (migrations, "
        f"{migrated.sha[:8]}) shipped migrations/0001_items.sql"
    )
    assert rollback.reason.startswith(recorded), rollback.reason
    entry = AuditEntry.objects.get(action=AuditAction.ROLLBACK_REQUESTED, deploy_id=rollback.pk)
    assert recorded in entry.detail
    assert len(shop["runs"].read_text().splitlines()) == 1, "a rollback never runs the release phase"

    environment_unlock(environment=environment, user=deployer, reason="checked the schema")  # a rollback locks
    forward = deploy_and_wait(environment, "migrations", deployer, celery_worker)
    assert forward.migrations == [{"change": "A", "path": "migrations/0001_items.sql"}]
    forced = post(api(deployer), "/api/v1/services/app/test/rollback", {"to": first.pk, "force": True})
    assert forced.status_code == 201, forced.json()
    again = wait_for_deploy(forced.json()["id"], celery_worker)
    assert again.reason.startswith(f"rolled back across schema changes, confirmed by dana: deploy #{migrated.pk} ")
    assert f"deploy #{forward.pk} (migrations" in again.reason


def test_migration_files_are_found_by_glob() -> None:
    changes = [
        ("A", "shop/migrations/0002_price.py"),
        ("A", "shop/migrations/__init__.py"),
        ("M", "shop/models.py"),
        ("A", "db/migrate/20260101_add_price.rb"),
        ("D", "prisma/migrations/20260101_init/migration.sql"),
    ]
    assert [m["path"] for m in migrations_in(changes, list(DEFAULT_MIGRATIONS))] == [
        "shop/migrations/0002_price.py",
        "db/migrate/20260101_add_price.rb",
        "prisma/migrations/20260101_init/migration.sql",
    ]
    assert migrations_in(changes, ["db/migrate/*.rb"]) == [{"change": "A", "path": "db/migrate/20260101_add_price.rb"}]


@pytest.mark.django_db
def test_the_catalog_names_migrations_or_turns_them_off() -> None:
    catalog = """
services:
  shop:
    repo: /srv/git/shop.git
    migrations: {value}
    environments:
      test: {{deploy_path: /srv/shop, hosts: [{{address: app1.internal}}]}}
"""
    catalog_apply(catalog_parse(catalog.format(value='["*/migrations/*.py"]')))
    assert Service.objects.get(name="shop").migrations == ["*/migrations/*.py"]
    catalog_apply(catalog_parse(catalog.format(value="[]")))
    assert Service.objects.get(name="shop").migrations == []


def test_slack_refuses_a_rollback_across_migrations_and_links_the_page(
    environment: Environment, deployer: AbstractBaseUser
) -> None:
    earlier = Deploy.objects.create(environment=environment, ref="main", sha="a" * 40, status=DeployStatus.SUCCEEDED)
    later = Deploy.objects.create(
        environment=environment,
        ref="feature/x",
        sha="b" * 40,
        previous_sha="a" * 40,
        status=DeployStatus.SUCCEEDED,
        migrations=[{"change": "A", "path": "shop/migrations/0002_price.py"}],
    )

    answer = action_run(ROLLBACK, str(later.pk), deployer)

    assert answer.startswith(
        f":no_entry: not rolled back: going back to deploy #{earlier.pk} crosses schema changes (deploy #{later.pk} "
        "(feature/x, bbbbbbbb) shipped shop/migrations/0002_price.py). Roll back from the service page"
    ), answer
    assert not Deploy.objects.filter(rollback_of=earlier).exists()


@pytest.mark.django_db
def test_the_plan_names_config_changes_and_never_a_secret(environment: Environment) -> None:
    environment.config = {"DEBUG": "false", "DB_URL": "postgres://shop:{{secret.DB_PASSWORD}}@db/shop", "NEW": "1"}
    before = {"DEBUG": "true", "DB_URL": "postgres://shop:{{secret.OLD_PASSWORD}}@db/shop", "GONE": "x"}
    assert config_changes(environment, before) == [
        "DB_URL changed",
        "DEBUG changed: 'true' → 'false'",
        "GONE removed",
        "NEW added",
    ]


@pytest.mark.slow
def test_a_deploy_of_code_lacking_applied_migrations_asks_like_a_rollback(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
    slack: FakeSlack,
    shop: dict[str, Path],
) -> None:
    """Found by a real application: with a migration applied, deploying `main` (which lacks it) ran with one
    click and every write then failed. Now the plan, the page, the API and Slack ask, the worker refuses what
    was not confirmed, and a confirmation is recorded (issue 20, the schema guard)."""
    options = release_options(shop, release_command='"test ! -e migrate.py || python3 migrate.py"')
    environment = make_environment(options=options)
    deploy_and_wait(environment, "main", deployer, celery_worker)
    migrated = deploy_and_wait(environment, "migrations", deployer, celery_worker)
    assert migrated.status == DeployStatus.SUCCEEDED, migrated.reason
    lacking = (
        f"main lacks migration files that test runs now (migrations/0001_items.sql, in deploy #{migrated.pk}, "
        "migrations)"
    )

    plan = plan_page(deployer_client, "app", "test", "main")  # the list a worker made says it at once
    assert "data-confirm-schema" in plan and "1 applied here that this code lacks" in plan
    assert lacking in plan_page(deployer_client, "app", "test", "main"), "and the schema check, once listed"
    refused = post(api(deployer), "/api/v1/deploys/", {"service": "app", "environment": "test", "ref": "main"})
    assert refused.status_code == 409 and refused.json()["error"].startswith(lacking), refused.json()
    slack.add_user("dana@example.com", "U0DANA", "dana")
    request = slack.slash_command("deploy app main test", user_id="U0DANA")
    assert send(request).status_code == 200
    said = answer(slack, request)
    assert said.startswith(f":no_entry: {lacking}") and "/services/app/test/plan?ref=main|Open the plan" in said
    assert Deploy.objects.filter(environment=environment).count() == 2, "nothing was started"

    ChangeSet.objects.all().delete()  # as if no worker had listed it yet: the request cannot know
    unlisted = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert unlisted.status == DeployStatus.FAILED
    assert unlisted.reason.startswith(
        "not deployed: main lacks migration files that test ran until now (migrations/0001_items.sql)"
    ), unlisted.reason
    assert current_release(environment, 0) == f"releases/{migrated.pk}", "nothing changed on any host"

    plan_page(deployer_client, "app", "test", "main")  # listed again
    confirmed = deployer_client.post(
        reverse("deploy-create", args=["app", "test"]), {"ref": "main", "confirm_schema": "yes"}
    )
    assert confirmed.status_code == 302
    back = wait_for_deploy(Deploy.objects.latest("pk").pk, celery_worker)
    assert back.status == DeployStatus.SUCCEEDED, back.reason
    assert back.schema_confirmation == f"dana confirmed: {lacking}"
    entry = AuditEntry.objects.get(action=AuditAction.DEPLOY_REQUESTED, deploy_id=back.pk)
    assert entry.detail.endswith(f"; dana confirmed: {lacking}")

    again = plan_page(deployer_client, "app", "test", "migrations")  # the branch again, after going back
    assert f"(already applied here by deploy #{migrated.pk})" in again
    assert (
        "1 already applied here by an earlier deploy: the database has it, so release_command changes nothing" in again
    )


@pytest.mark.slow
def test_after_a_rollback_new_code_lacking_an_applied_migration_asks_once(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
    app_repo: AppRepo,
    shop: dict[str, Path],
) -> None:
    """What runs after a rollback lacks the migration too, so comparing with it alone says nothing: the
    worker also checks what deploys here applied. Confirmed once, it is not asked again."""
    options = release_options(shop, release_command='"test ! -e migrate.py || python3 migrate.py"')
    environment = make_environment(options=options)
    first = deploy_and_wait(environment, "main", deployer, celery_worker)
    migrated = deploy_and_wait(environment, "migrations", deployer, celery_worker)
    back = wait_for_deploy(
        deploy_rollback(environment=environment, user=deployer, to=first, confirm_schema=True).pk, celery_worker
    )
    assert back.status == DeployStatus.SUCCEEDED, back.reason
    environment_unlock(environment=environment, user=deployer, reason="checked the schema")
    setup.repo_branch(app_repo.path, "main", {"notes.txt": "not a migration\n"}, "A change on main")

    newer = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert newer.status == DeployStatus.FAILED
    assert newer.reason.startswith(
        "not deployed: main lacks migration files that test ran until now (migrations/0001_items.sql)"
    ), newer.reason

    plan_page(deployer_client, "app", "test", "main")
    confirmed = post(
        api(deployer), "/api/v1/deploys/", {"service": "app", "environment": "test", "ref": "main", "force": True}
    )
    assert confirmed.status_code == 201, confirmed.json()
    assert wait_for_deploy(confirmed.json()["id"], celery_worker).status == DeployStatus.SUCCEEDED
    setup.repo_branch(app_repo.path, "main", {"notes.txt": "again\n"}, "Another change on main")
    assert deploy_and_wait(environment, "main", deployer, celery_worker).status == DeployStatus.SUCCEEDED, "once"
    assert migrated.migrations == [{"change": "A", "path": "migrations/0001_items.sql"}]
