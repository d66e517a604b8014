"""The catalog in git: workers follow GANTRY_CATALOG_REPO; a commit is applied only when the whole catalog is
valid; an invalid one keeps the last good catalog live and its problems are shown and audited; who pushed
comes from GitHub's signed webhook; the admin does not edit what the catalog makes. A real git repository,
and a real worker following it."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.urls import reverse

from deployer import queue
from deployer.celery import app
from deployer.choices import AuditAction
from deployer.models import AuditEntry, CatalogState, Environment, Service, SlackMessage, WebhookDelivery
from deployer.notify.outbox import message_send
from deployer.ops.catalog_follow import _older, catalog_follow
from deployer.sources.webhooks import delivery_process
from tests.fakes.github import ZERO_SHA, FakeGitHub, push_event, sign
from tests.fakes.slack import FakeSlack
from tests.support.constants import WEBHOOK_SECRET
from tests.support.worker import Worker

CATALOG = """
teams:
  web: {}
services:
  app:
    team: web
    repo: /srv/git/app.git
    environments:
      test:
        deploy_path: /srv/app
        releases_to_keep: 5
        hosts: [{address: 10.0.0.1}]
"""


class CatalogRepo:
    """A git repository holding catalog.yml on main, as a team's catalog repository would."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        self.git("init", "--quiet", "--initial-branch=main")

    def git(self, *args: str) -> str:
        env = {"GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.com", "GIT_COMMITTER_NAME": "Ada"}
        env |= {"GIT_COMMITTER_EMAIL": "ada@example.com", "HOME": str(self.path), "PATH": "/usr/bin:/bin"}
        done = subprocess.run(["git", *args], cwd=self.path, env=env, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    def commit(self, text: str, message: str) -> str:
        return self.commit_files({"catalog.yml": text}, message)

    def commit_files(self, files: dict[str, str], message: str) -> str:
        for name, text in files.items():
            (self.path / name).parent.mkdir(parents=True, exist_ok=True)
            (self.path / name).write_text(text)
            self.git("add", name)
        self.git("commit", "--quiet", "-m", message)
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def catalog_repo(tmp_path: Path, settings: Any) -> CatalogRepo:
    repo = CatalogRepo(tmp_path / f"catalog-{uuid.uuid4().hex[:6]}")
    settings.CATALOG_REPO, settings.CATALOG_BRANCH, settings.CATALOG_PATH = str(repo.path), "main", "catalog.yml"
    return repo


def test_a_valid_commit_is_applied_and_audited_with_its_diff(db: None, catalog_repo: CatalogRepo) -> None:
    first = catalog_repo.commit(CATALOG, "The first services")

    followed = catalog_follow()

    assert followed.outcome == "applied" and followed.sha == first
    assert Environment.objects.get(name="test").releases_to_keep == 5
    entry = AuditEntry.objects.get(action=AuditAction.CATALOG_APPLIED)
    assert entry.detail.startswith(f"commit {first[:12]} of catalog.yml:") and "+ service app" in entry.detail
    assert catalog_follow().outcome == "unchanged", "the same commit is not applied twice"
    second = catalog_repo.commit(CATALOG.replace("releases_to_keep: 5", "releases_to_keep: 4"), "Keep fewer")
    assert catalog_follow().sha == second
    changed = AuditEntry.objects.filter(action=AuditAction.CATALOG_APPLIED).order_by("-pk").first()
    assert changed is not None and "~ environment app test (releases_to_keep: 5 → 4)" in changed.detail


def test_an_invalid_commit_keeps_the_last_good_catalog_live_and_says_why(
    db: None, catalog_repo: CatalogRepo, deployer: AbstractBaseUser, deployer_client: Client
) -> None:
    good = catalog_repo.commit(CATALOG, "The first services")
    catalog_follow()
    bad_text = CATALOG.replace("releases_to_keep: 5", "releases_to_keep: 4").replace("deploy_path", "deploy_pth")
    bad = catalog_repo.commit(bad_text, "Oops")

    followed = catalog_follow()

    assert followed.outcome == "refused" and "did you mean 'deploy_path'?" in followed.said
    assert Environment.objects.get(name="test").releases_to_keep == 5, "nothing of the bad commit was applied"
    state = CatalogState.get()
    assert (state.applied_sha, state.seen_sha) == (good, bad)
    refused = AuditEntry.objects.get(action=AuditAction.CATALOG_REFUSED)
    assert f"commit {bad[:12]} of catalog.yml is invalid, nothing changed" in refused.detail
    assert "catalog.yml:" in refused.detail and f"the catalog of {good[:12]} stays live" in refused.detail
    page = deployer_client.get(reverse("catalog")).content.decode()
    assert "data-catalog-refused" in page and bad[:12] in page and "did you mean" in page


def test_a_catalog_split_into_files_is_followed_and_a_problem_names_its_file(
    db: None, catalog_repo: CatalogRepo, settings: Any
) -> None:
    settings.CATALOG_PATH = "ops/catalog.yml"
    service = CATALOG.split("services:\n", 1)[1]
    catalog_repo.commit_files(
        {
            "ops/catalog.yml": "include: [teams/*.yml, services/*.yml]\n",
            "ops/teams/web.yml": "teams:\n  web: {}\n",
            "ops/services/app.yml": f"services:\n{service}",
            "services/elsewhere.yml": "not: [the catalog's]\n",
        },
        "One file per team and service",
    )
    assert catalog_follow().outcome == "applied" and Environment.objects.get(name="test").releases_to_keep == 5

    catalog_repo.commit_files({"ops/services/app.yml": f"services:\n{service}".replace("10.0.0.1", "")}, "Oops")
    followed = catalog_follow()

    assert followed.outcome == "refused"
    assert "ops/services/app.yml:9: services.app.environments.test.hosts[0].address" in followed.said
    assert Environment.objects.get(name="test").hosts.get().address == "10.0.0.1", "the last good catalog stays"


def test_a_refused_commit_is_told_on_slack(
    db: None, catalog_repo: CatalogRepo, slack: FakeSlack, settings: Any
) -> None:
    settings.SLACK_DEFAULT_CHANNEL = "#deploys"
    catalog_repo.commit(CATALOG, "The first services")
    catalog_follow()
    bad = catalog_repo.commit(CATALOG.replace("deploy_path", "deploy_pth"), "Oops <!channel>")
    catalog_follow()

    notice = SlackMessage.objects.get(kind=SlackMessage.Kind.NOTICE)
    message_send(notice.pk)  # as the worker does

    (posted,) = slack.top_level()
    assert f"Catalog commit `{bad[:12]}` was not applied" in posted.text and "deploy_path" in posted.text
    assert SlackMessage.objects.get(pk=notice.pk).state == SlackMessage.State.SENT


def test_a_refused_commit_is_told_to_the_team_that_owns_the_broken_part(
    db: None, catalog_repo: CatalogRepo, slack: FakeSlack, settings: Any
) -> None:
    settings.SLACK_DEFAULT_CHANNEL = "#deploys"
    catalog_repo.commit(CATALOG.replace("web: {}", "web: {slack_channel: '#web-deploys'}"), "The first services")
    catalog_follow()
    catalog_repo.commit(CATALOG.replace("deploy_path", "deploy_pth"), "Oops")
    catalog_follow()

    for notice in SlackMessage.objects.filter(kind=SlackMessage.Kind.NOTICE):
        message_send(notice.pk)

    assert sorted(posted.channel for posted in slack.top_level()) == ["C0DEPLOYS", "C0WEB"]


def test_a_repository_that_cannot_be_read_changes_nothing_and_says_so(
    db: None, catalog_repo: CatalogRepo, settings: Any
) -> None:
    catalog_repo.commit(CATALOG, "The first services")
    settings.CATALOG_BRANCH = "mian"

    followed = catalog_follow()

    assert followed.outcome == "unreadable" and "has no branch 'mian'" in followed.said
    assert not Service.objects.exists()
    assert "has no branch 'mian'" in CatalogState.get().error


def test_a_signed_push_to_the_catalog_repository_names_who_pushed(
    db: None, github: FakeGitHub, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    github.add_repo("acme/catalog", branches=1)
    push = push_event(github, "acme/catalog", "main", ZERO_SHA)
    settings.CATALOG_REPO = push["repository"]["clone_url"]
    raw = json.dumps(push).encode()
    headers = {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(raw, WEBHOOK_SECRET),
    }
    assert (
        Client().post(reverse("hook-github"), raw, content_type="application/json", headers=headers).status_code == 202
    )

    with django_capture_on_commit_callbacks() as sent:
        delivery_process(delivery_id=WebhookDelivery.objects.get().pk)

    assert WebhookDelivery.objects.get().outcome == f"catalog push by ada: {push['after'][:12]}"
    state = CatalogState.get()
    assert (state.pushed_sha, state.pushed_by) == (push["after"], "ada (GitHub)")
    assert [callback.__qualname__ for callback in sent] == [f"enqueue({queue.SYNC_CATALOG})"]


def test_the_admin_does_not_edit_what_the_catalog_in_git_makes(db: None, catalog_repo: CatalogRepo) -> None:
    catalog_repo.commit(CATALOG, "The first services")
    catalog_follow()
    root = Client()
    root.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "root-password-1"))
    service = Service.objects.get()

    listing = root.get(reverse("admin:deployer_service_changelist")).content.decode()
    change = root.post(reverse("admin:deployer_service_change", args=[service.pk]), {"name": "renamed"})

    assert "These come from the catalog in git" in listing
    assert change.status_code == 403 and Service.objects.get().name == "app"


@pytest.mark.slow
def test_a_worker_follows_the_catalog_repository(transactional_db: None, tmp_path: Path) -> None:
    repo = CatalogRepo(tmp_path / "catalog")
    repo.commit(CATALOG, "The first services")
    # A queue of its own: the session's shared worker (without this catalog setting) must not take the task.
    own = f"catalog-{uuid.uuid4().hex[:6]}"
    worker = Worker(queues=own, env={"GANTRY_CATALOG_REPO": str(repo.path), "GANTRY_CATALOG_BRANCH": "main"})
    worker.start()
    try:
        app.send_task(queue.SYNC_CATALOG, queue=own)  # the task beat's poll and the webhook send
        deadline = time.monotonic() + 30
        while not Service.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        worker.stop()
    assert Service.objects.filter(name="app").exists(), worker.log()
    assert AuditEntry.objects.filter(action=AuditAction.CATALOG_APPLIED).exists()


def test_a_poll_names_no_pusher_and_an_older_commit_never_comes_back(db: None, catalog_repo: CatalogRepo) -> None:
    older = catalog_repo.commit(CATALOG, "The first services")
    newer = catalog_repo.commit(CATALOG.replace("releases_to_keep: 5", "releases_to_keep: 4"), "Keep fewer")

    assert catalog_follow().sha == newer
    entry = AuditEntry.objects.get(action=AuditAction.CATALOG_APPLIED)
    assert entry.actor_name == "(pusher unknown: seen by the poll)", "never Gantry itself"
    assert _older(older, newer) and not _older(newer, older), "a slower follower's older look is not applied"


def test_a_push_to_a_repository_that_is_a_service_and_the_catalog_serves_both(
    db: None, github: FakeGitHub, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    github.add_repo("acme/app", branches=2)
    Service.objects.create(name="app", github_repo="acme/app", repo_url="https://example.invalid/acme/app.git")
    push = push_event(github, "acme/app", "main", ZERO_SHA)
    settings.CATALOG_REPO = push["repository"]["clone_url"]
    delivery = WebhookDelivery.objects.create(source="github", delivery_id="d-1", event="push", payload=push)

    with django_capture_on_commit_callbacks():
        delivery_process(delivery_id=delivery.pk)

    outcome = WebhookDelivery.objects.get().outcome
    assert outcome.startswith("catalog push by ada") and "main" in outcome.split(";", 1)[1], outcome


def test_serve_check_points_at_the_catalog_in_git_not_at_load_catalog(db: None, settings: Any) -> None:
    from io import StringIO

    from django.core.management import call_command

    settings.CATALOG_REPO = "git@github.com:acme/catalog.git"
    out = StringIO()
    call_command("serve_check", stdout=out)
    assert "the workers follow the catalog in git@github.com:acme/catalog.git (main)" in out.getvalue()
    assert "load_catalog" not in out.getvalue()
