"""Outgoing webhooks: every deploy event, signed, through the outbox; a real HTTP receiver checks each
signature and rebuilds the order from the sequence numbers while retries deliver out of order."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.utils import timezone

from deployer.catalog.catalog_files import CatalogError
from deployer.catalog.load import catalog_apply, catalog_parse
from deployer.choices import DeployStatus
from deployer.deploys.request import deploy_request
from deployer.environments.locks import environment_lock, environment_unlock
from deployer.models import Environment, HookDelivery
from deployer.notify.hooks_out import hook_send
from deployer.notify.outbox import SendLater
from tests.support.catalogs import SMALL_CATALOG, MakeEnvironment
from tests.support.constants import HOOK_SECRET
from tests.support.hook_receiver import HookReceiver
from tests.support.listener import Listener
from tests.support.waiting import wait_for_deploy, wait_until
from tests.support.worker import Worker


@pytest.fixture
def receiver() -> Iterator[HookReceiver]:
    found = HookReceiver(HOOK_SECRET).start()
    yield found
    found.stop()


def hooked(url: str, extra: str = "") -> dict[str, str | None]:
    return {"webhooks": f"[{{url: '{url}', secret_env: GANTRY_WEBHOOK_WEB_TEST{extra}}}]", "batch_size": "1"}


@pytest.mark.slow
def test_every_event_arrives_signed_and_the_sequence_rebuilds_the_order(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, receiver: HookReceiver
) -> None:
    environment = make_environment(options=hooked(receiver.url))
    receiver.fail_first["deploy.started"] = 1  # retried 5 s later: it arrives after the batches
    deploy = deploy_request(environment=environment, ref="main", user=deployer)
    assert wait_for_deploy(deploy.pk, celery_worker).status == DeployStatus.SUCCEEDED
    wait_until(lambda: len(receiver.events(deploy.pk)) == 6, timeout=30)

    events = receiver.events(deploy.pk)
    assert [e["event"] for e in events] == [
        "deploy.requested",
        "deploy.started",
        *["deploy.batch_done"] * 3,
        "deploy.succeeded",
    ]
    assert [e["sequence"] for e in events] == [1, 2, 3, 4, 5, 6]
    arrived = [e["event"] for e in receiver.taken if e["deploy"]]
    assert arrived.index("deploy.started") > arrived.index("deploy.batch_done"), "the retry came late"
    assert receiver.refused == [] and max(receiver.deliveries.values()) == 2, "one retry, same delivery id"
    done = events[-1]
    assert (done["service"], done["environment"], done["actor"]) == ("app", "test", "")
    assert done["deploy"]["sha"] == deploy.sha and done["deploy"]["requested_by"] == "dana"
    assert done["deploy"]["url"].endswith(f"/deploys/{deploy.pk}/")
    assert HookDelivery.objects.exclude(state=HookDelivery.State.DELIVERED).count() == 0

    environment_lock(environment, user=deployer, reason="incident 9")  # type: ignore[arg-type]
    environment_unlock(environment, user=deployer)  # type: ignore[arg-type]
    wait_until(lambda: sum(1 for e in receiver.taken if e["event"].startswith("environment.")) == 2, timeout=30)
    locked = next(e for e in receiver.taken if e["event"] == "environment.locked")
    assert (locked["actor"], locked["detail"], locked["sequence"], locked["deploy"]) == (
        "dana",
        "incident 9",
        None,
        None,
    )


def test_a_receiver_down_is_tried_again_and_what_cannot_work_is_given_up_saying_why(
    db: None, deployer: AbstractBaseUser, receiver: HookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GANTRY_WEBHOOK_WEB_TEST", HOOK_SECRET)  # this process sends here, as a worker would
    closed = Listener()  # a port nobody answers HTTP on once closed
    url = closed.url
    closed.sock.close()
    environment = _environment(url)
    environment_lock(environment, user=deployer, reason="maintenance")  # type: ignore[arg-type]
    row = HookDelivery.objects.get()
    with pytest.raises(SendLater):
        hook_send(row.pk)
    row.refresh_from_db()
    assert (row.state, row.attempts) == (HookDelivery.State.PENDING, 1) and "could not reach" in row.last_error
    assert row.next_attempt_at > timezone.now()
    hook_send(row.pk)  # not due yet: nothing happens
    row.refresh_from_db()
    assert row.attempts == 1

    HookDelivery.objects.filter(pk=row.pk).update(url=receiver.url, next_attempt_at=timezone.now())
    hook_send(row.pk)
    row.refresh_from_db()
    assert (row.state, row.last_status) == (HookDelivery.State.DELIVERED, 200)
    assert [e["event"] for e in receiver.taken] == ["environment.locked"]

    Environment.objects.filter(pk=environment.pk).update(
        webhooks=[{"url": receiver.url, "secret_env": "GANTRY_WEBHOOK_NOT_SET"}]
    )
    environment.refresh_from_db()
    environment_unlock(environment, user=deployer)  # type: ignore[arg-type]
    unset = HookDelivery.objects.latest("pk")
    hook_send(unset.pk)
    unset.refresh_from_db()
    assert unset.state == HookDelivery.State.FAILED
    assert unset.last_error.startswith("GANTRY_WEBHOOK_NOT_SET is not set where Gantry's workers run")

    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(admin)
    page = client.get("/status/").content.decode()
    assert "Outgoing webhooks" in page and "GANTRY_WEBHOOK_NOT_SET is not set" in page, "the backlog is visible"


def _environment(url: str) -> Environment:
    catalog_apply(catalog_parse(SMALL_CATALOG.replace("deploy_path: /srv/app", _hooks_yaml(url))))
    return Environment.objects.get()


def _hooks_yaml(url: str) -> str:
    return f"deploy_path: /srv/app\n        webhooks: [{{url: '{url}', secret_env: GANTRY_WEBHOOK_WEB_TEST}}]"


@pytest.mark.parametrize(
    ("hook", "said"),
    [
        ("{url: 'http://169.254.169.254/latest', secret_env: GANTRY_WEBHOOK_X}", "link-local or cloud metadata"),
        ("{url: 'https://user:pw@hooks.example.com/', secret_env: GANTRY_WEBHOOK_X}", "must not carry a user"),
        ("{url: 'ftp://hooks.example.com/', secret_env: GANTRY_WEBHOOK_X}", "http:// or https:// URL"),
        ("{url: 'https://hooks.example.com/', secret_env: SECRET_KEY}", "GANTRY_WEBHOOK_"),
        ("{url: 'https://hooks.example.com/', secret_env: GANTRY_WEBHOOK_X, events: [deploy.exploded]}", "events"),
        ("{url: 'https://hooks.example.com/', secret_env: GANTRY_WEBHOOK_OPS_KEY}", "is not app's to sign with"),
    ],
)
def test_the_catalog_refuses_a_webhook_it_could_not_send_safely(db: None, hook: str, said: str) -> None:
    text = SMALL_CATALOG.replace("deploy_path: /srv/app", f"deploy_path: /srv/app\n        webhooks: [{hook}]")
    with pytest.raises(CatalogError) as refused:
        catalog_parse(text)
    assert said in str(refused.value)
