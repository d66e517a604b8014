"""The history page: every action, filtered in the URL, paged, exported as CSV; the log cannot be changed."""

from __future__ import annotations

import csv
import importlib
import io
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import ProtectedError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from deployer.catalog.load import catalog_apply, catalog_parse
from deployer.choices import AuditAction, DeployStatus
from deployer.deploys.lifecycle import deploy_transition
from deployer.deploys.request import deploy_request
from deployer.environments.locks import environment_lock, environment_unlock
from deployer.models import AuditEntry, Deploy, Environment, Service
from tests.support.catalogs import SMALL_CATALOG

HISTORY = reverse("history")
CSV = reverse("history-csv")


def shipped(environment: Environment, user: AbstractBaseUser, ref: str, outcome: DeployStatus) -> Deploy:
    """A deploy requested by `user` and taken to `outcome` through the real state machine."""
    deploy = deploy_request(environment=environment, ref=ref, user=user)
    assert deploy_transition(deploy, to=DeployStatus.RUNNING)
    assert deploy_transition(deploy, to=outcome, reason=f"it {outcome}")
    return deploy


def rows(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200, response.content[:500]
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def story(environment: Environment, deployer: AbstractBaseUser) -> dict[str, Deploy]:
    good = shipped(environment, deployer, "main", DeployStatus.SUCCEEDED)
    bad = shipped(environment, deployer, "feature/x", DeployStatus.FAILED)
    olga = get_user_model().objects.create_superuser("olga", "olga@example.com", "pw")
    environment_lock(environment, user=olga, reason='=HYPERLINK("http://evil.example","click")')
    environment_unlock(environment, user=olga, reason="done")
    return {"good": good, "bad": bad}


def test_the_history_shows_who_shipped_what_and_how_it_ended(
    story: dict[str, Deploy], deployer_client: Client, django_assert_max_num_queries: Any
) -> None:
    with django_assert_max_num_queries(12):
        page = deployer_client.get(HISTORY).content.decode()
    bad = story["bad"]
    assert "6 entries" in page, "2 requests, 2 endings, a lock, an unlock"
    assert f'href="/deploys/{bad.pk}/">#{bad.pk}</a>' in page
    assert "deploy ended" in page and 'data-status="failed"' in page and "locked an environment" in page
    assert bad.sha[:8] in page and bad.previous_sha[:8] in page and "feature/x" in page

    failed = deployer_client.get(HISTORY, {"outcome": "failed"}).content.decode()
    assert "1 entry" in failed and "feature/x" in failed and 'data-status="succeeded"' not in failed
    olga = deployer_client.get(HISTORY, {"user": "olga", "action": "locked"}).content.decode()
    assert "1 entry" in olga and "HYPERLINK" in olga
    teams = deployer_client.get(HISTORY, {"team": "web", "service": "app", "environment": "test"}).content.decode()
    assert "6 entries" in teams


def test_bad_filters_say_what_is_wrong(story: dict[str, Deploy], deployer_client: Client) -> None:
    response = deployer_client.get(HISTORY, {"outcome": "exploded"})
    assert response.status_code == 400
    assert "outcome: Select a valid choice. exploded is not one of the available choices." in response.content.decode()
    swapped = deployer_client.get(HISTORY, {"since": "2026-02-01", "until": "2026-01-01"})
    assert swapped.status_code == 400 and "is before" in swapped.content.decode()
    assert deployer_client.get(HISTORY, {"since": "yesterday"}).status_code == 400
    assert deployer_client.get(CSV, {"outcome": "exploded"}).status_code == 400


def test_pages_keep_the_filters_and_the_csv_holds_exactly_what_is_filtered(
    environment: Environment, deployer: AbstractBaseUser, deployer_client: Client
) -> None:
    for n in range(30):
        environment_lock(environment, user=deployer, reason=f"lock {n}")
        environment_unlock(environment, user=deployer)
    shipped(environment, deployer, "main", DeployStatus.SUCCEEDED)

    first = deployer_client.get(HISTORY, {"user": "dana", "action": "locked"}).content.decode()
    assert "30 entries" in first and "page 1 of" not in first, "one page: no pager"
    everything = deployer_client.get(HISTORY, {"user": "dana"}).content.decode()
    assert "62 entries" in everything and "page 1 of 2" in everything
    assert 'href="?user=dana&amp;page=2"' in everything, "the next page keeps the filter"

    exported = rows(deployer_client.get(CSV, {"user": "dana", "page": "2"}))
    assert len(exported) == 62, "every filtered row, not one page"
    locks = rows(deployer_client.get(CSV, {"action": "locked"}))
    assert len(locks) == 30 and {row["action"] for row in locks} == {"locked"}
    ended = rows(deployer_client.get(CSV, {"outcome": "succeeded"}))
    (row,) = ended
    assert row["outcome"] == "succeeded" and row["who"] == "dana" and row["ref"] == "main"
    assert row["duration_seconds"] and row["link"].endswith(f"/deploys/{row['deploy']}/")


def test_csv_cells_never_become_spreadsheet_formulas(story: dict[str, Deploy], deployer_client: Client) -> None:
    (locked,) = rows(deployer_client.get(CSV, {"action": "locked"}))
    assert locked["detail"].startswith("'=HYPERLINK(")


def test_neither_the_pages_nor_the_admin_offer_a_way_to_change_entries(story: dict[str, Deploy]) -> None:
    """Single changes and deletes are refused in tests/environments/test_access.py; here the bulk paths."""
    admin = Client()
    admin.force_login(get_user_model().objects.get(username="olga"))
    bulk = {"action": "delete_selected", "_selected_action": list(AuditEntry.objects.values_list("pk", flat=True))}
    admin.post(reverse("admin:deployer_auditentry_changelist"), {**bulk, "post": "yes"})
    assert admin.post(HISTORY, {"detail": "x"}).status_code == 405
    assert admin.post(CSV).status_code == 405
    assert AuditEntry.objects.count() == 6
    with pytest.raises(PermissionError):
        AuditEntry.objects.filter(action=AuditAction.LOCKED).update(detail="rewritten")


def test_history_outlives_services_removed_from_the_catalog_or_deleted(
    story: dict[str, Deploy], deployer: AbstractBaseUser, deployer_client: Client
) -> None:
    bad = story["bad"]
    # Gone from the catalog file: the service and its deploys are kept (they are history), and so is the log.
    catalog_apply(catalog_parse(SMALL_CATALOG.replace("  app:", "  web:")))
    page = deployer_client.get(HISTORY, {"service": "app"}).content.decode()
    assert "6 entries" in page and f'href="/deploys/{bad.pk}/"' in page
    # A deploy row is never deleted, so neither is a service that has some.
    with pytest.raises(ProtectedError):
        Service.objects.filter(name="app").delete()

    # A service without deploys can be deleted; what was done to it stays in the log.
    old = Environment.objects.get(service__name="web", name="test")
    environment_lock(old, user=deployer, reason="retiring web")
    Service.objects.filter(name="web").delete()
    page = deployer_client.get(HISTORY, {"service": "web"}).content.decode()
    assert "1 entry" in page and "retiring web" in page
    assert 'href="/services/web/"' not in page, "no link to a service that is gone"
    (locked,) = rows(deployer_client.get(CSV, {"service": "web"}))
    assert (locked["team"], locked["environment"], locked["who"]) == ("web", "test", "dana")


def test_deploys_that_ended_before_the_history_had_end_entries_get_them_once(
    environment: Environment, deployer: AbstractBaseUser
) -> None:
    backfill = importlib.import_module("deployer.migrations.0021_backfill_deploy_ended").backfill
    ended_at = timezone.now() - timedelta(days=3)
    old = Deploy.objects.create(
        environment=environment,
        ref="main",
        sha="a" * 40,
        status=DeployStatus.FAILED,
        requested_by=deployer,
        started_at=ended_at - timedelta(seconds=42),
        finished_at=ended_at,
        reason="host said no",
    )
    Deploy.objects.create(environment=environment, ref="main", sha="b" * 40, status=DeployStatus.QUEUED)

    backfill(django_apps, None)
    backfill(django_apps, None)

    (entry,) = AuditEntry.objects.filter(action=AuditAction.DEPLOY_ENDED)
    assert (entry.deploy_id, entry.outcome, entry.actor_name, entry.team) == (old.pk, "failed", "dana", "web")
    assert entry.at == ended_at and entry.duration_seconds == 42 and entry.detail == "host said no"
    assert AuditEntry._meta.get_field("at").auto_now_add, "the model is left as it was"
