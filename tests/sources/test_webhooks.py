"""Webhooks: signed, deduplicated, answered fast; the work happens in a worker."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from deployer.models import Branch, Service, WebhookDelivery
from deployer.sources.webhooks import deliveries_sweep, delivery_process
from tests.fakes.github import ZERO_SHA, FakeGitHub, push_event, ref_event
from tests.fakes.jenkins import FakeJenkins
from tests.support.catalogs import github_services
from tests.support.constants import JENKINS_HOOK_TOKEN
from tests.support.webhooks import post

pytestmark = pytest.mark.django_db
CaptureOnCommit = Callable[..., AbstractContextManager[list[Callable[[], None]]]]


@pytest.fixture
def app(github: FakeGitHub) -> Service:
    github.add_repo("acme/app", branches=2)
    return github_services("app")[0]


def process_all() -> None:
    for delivery in WebhookDelivery.objects.filter(processed_at__isnull=True):
        delivery_process(delivery_id=delivery.pk)


def test_a_bad_signature_is_refused(client: Client, app: Service, github: FakeGitHub) -> None:
    response = post(client, "push", push_event(github, "acme/app", "main", ZERO_SHA), secret="wrong")
    assert response.status_code == 403
    assert b"X-Hub-Signature-256" in response.content
    assert not WebhookDelivery.objects.exists()


def test_a_missing_signature_is_refused(client: Client, app: Service) -> None:
    response = client.post(
        reverse("hook-github"),
        b"{}",
        content_type="application/json",
        headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": "1"},
    )
    assert response.status_code == 403


def test_webhooks_are_refused_when_no_secret_is_set(client: Client, app: Service, settings: object) -> None:
    settings.GITHUB_WEBHOOK_SECRET = ""  # type: ignore[attr-defined]
    response = post(client, "ping", {"zen": "hi"})
    assert response.status_code == 403 and b"GITHUB_WEBHOOK_SECRET" in response.content


def test_ping_answers_and_unknown_events_get_204(client: Client, app: Service, github: FakeGitHub) -> None:
    assert post(client, "ping", {"zen": "Keep it logically awesome."}).status_code == 200
    assert post(client, "issues", {"action": "opened"}).status_code == 204
    assert not WebhookDelivery.objects.exists()


def test_a_push_is_recorded_answered_fast_and_applied_by_a_worker(
    client: Client, app: Service, github: FakeGitHub, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    before = github.repos["acme/app"].branches["main"]
    sha = github.commit("acme/app", "main", "Ship the webhook\n\nwith a body")
    github.reset_counters()

    with django_capture_on_commit_callbacks() as queued:
        response = post(client, "push", push_event(github, "acme/app", "main", before))

    assert response.status_code == 202
    assert github.count() == 0, "the web process does not call GitHub"
    assert len(queued) == 1, "the work is queued for a worker"
    process_all()
    branch = Branch.objects.get(service=app, name="main")
    assert (branch.sha, branch.message, branch.author) == (sha, "Ship the webhook", "Ada Lovelace")


def test_a_replayed_delivery_is_ignored(client: Client, app: Service, github: FakeGitHub) -> None:
    body = push_event(github, "acme/app", "main", ZERO_SHA)
    assert post(client, "push", body, delivery="d-1").status_code == 202
    response = post(client, "push", body, delivery="d-1")
    assert response.status_code == 200 and b"received before" in response.content
    assert WebhookDelivery.objects.count() == 1


def test_branches_created_and_deleted_by_webhook(client: Client, app: Service, github: FakeGitHub) -> None:
    sha = github.commit("acme/app", "feature/new", "Start something")
    post(client, "create", ref_event(github, "acme/app", "feature/new"))
    process_all()
    assert Branch.objects.get(service=app, name="feature/new").sha == sha

    github.delete_branch("acme/app", "feature/new")
    post(client, "delete", ref_event(github, "acme/app", "feature/new"))
    process_all()
    assert not Branch.objects.filter(service=app, name="feature/new").exists()


def test_a_push_that_deletes_a_branch_removes_it(client: Client, app: Service, github: FakeGitHub) -> None:
    Branch.objects.create(service=app, name="feature/b001", sha="f" * 40)
    before = github.repos["acme/app"].branches["feature/b001"]
    github.delete_branch("acme/app", "feature/b001")
    body = push_event(github, "acme/app", "feature/b001", before, deleted=True)
    post(client, "push", body)
    process_all()
    assert not Branch.objects.filter(service=app, name="feature/b001").exists()


def test_a_tag_syncs_the_tags_again_and_unknown_repositories_are_ignored(
    client: Client, app: Service, github: FakeGitHub
) -> None:
    post(client, "create", ref_event(github, "acme/app", "v1.0", ref_type="tag"))
    process_all()
    assert WebhookDelivery.objects.get().outcome == "tags changed: synced again"
    github.add_repo("acme/other")
    response = post(client, "push", push_event(github, "acme/other", "main", ZERO_SHA))
    assert response.status_code == 202 and b"no service" in response.content


def test_deliveries_left_behind_by_a_broker_outage_are_swept(app: Service, github: FakeGitHub) -> None:
    WebhookDelivery.objects.create(source="github", delivery_id="lost", event="push", payload={})
    WebhookDelivery.objects.update(received_at=WebhookDelivery.objects.get().received_at - timedelta(minutes=5))
    assert deliveries_sweep() == 1


def test_the_jenkins_hook_needs_its_token_and_refreshes_the_right_service(
    client: Client, app: Service, jenkins_server: FakeJenkins
) -> None:
    Service.objects.filter(pk=app.pk).update(jenkins_job="team/app")
    url = reverse("hook-jenkins")
    body = {"name": "feature%2Ffoo", "url": "job/team/job/app/job/feature%252Ffoo/", "build": {"phase": "COMPLETED"}}

    assert client.post(url, body, content_type="application/json").status_code == 403
    response = client.post(url, body, content_type="application/json", headers={"X-Gantry-Token": JENKINS_HOOK_TOKEN})
    assert response.status_code == 202 and response.json() == {"refreshing": ["app"]}
    other = client.post(f"{url}?token={JENKINS_HOOK_TOKEN}", {"job": "unknown"})
    assert other.status_code == 404 and b"no service" in other.content


def test_a_replayed_or_out_of_order_push_never_moves_a_branch_back(
    client: Client, app: Service, github: FakeGitHub
) -> None:
    first = github.repos["acme/app"].branches["main"]
    github.commit("acme/app", "main", "Second")
    old_push = push_event(github, "acme/app", "main", first)  # first → second, signed by GitHub
    second = github.repos["acme/app"].branches["main"]
    third = github.commit("acme/app", "main", "Third")
    post(client, "push", push_event(github, "acme/app", "main", second))
    post(client, "push", old_push)  # arrives late (or is replayed under a new delivery id)
    for delivery in WebhookDelivery.objects.order_by("pk"):
        delivery_process(delivery_id=delivery.pk)

    assert Branch.objects.get(service=app, name="main").sha == third
    late = WebhookDelivery.objects.order_by("pk").last()
    assert late.outcome == (
        f"out of order (it moved {first[:8]}, we had {third[:8]}): branch main resynced from GitHub at {third[:8]}"
    )


def test_a_push_for_a_branch_we_do_not_know_is_checked_with_github(
    client: Client, app: Service, github: FakeGitHub
) -> None:
    before = github.repos["acme/app"].branches["feature/b001"]
    github.commit("acme/app", "feature/b001", "More work")
    body = push_event(github, "acme/app", "feature/b001", before)
    github.delete_branch("acme/app", "feature/b001")  # and it is gone by the time the push is applied
    Branch.objects.filter(service=app, name="feature/b001").delete()
    post(client, "push", body)
    process_all()
    assert not Branch.objects.filter(service=app, name="feature/b001").exists()
    assert "branch feature/b001 is gone on GitHub, removed" in WebhookDelivery.objects.get().outcome
