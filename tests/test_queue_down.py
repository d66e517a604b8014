"""The task queue (Redis) goes down: every path that enqueues answers clearly, a deploy asked for meanwhile is
recorded and waits, and it starts by itself once Redis is back. Redis, web, worker and beat are real processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from rest_framework.authtoken.models import Token

from deployer.choices import DeployStatus
from deployer.models import Deploy, Service
from tests.conftest import MakeEnvironment, wait_for_deploy
from tests.support.redis import RedisServer
from tests.support.webserver import WebServer
from tests.support.worker import Beat, Worker


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.mark.slow
def test_with_redis_down_a_deploy_is_recorded_waits_and_starts_when_redis_is_back(
    make_environment: MakeEnvironment, deployer: AbstractBaseUser, redis_server: RedisServer
) -> None:
    make_environment()
    on_our_redis = {"REDIS_URL": redis_server.url, "GANTRY_BROKER_PREFIX": ""}
    worker, beat, web = Worker(env=on_our_redis), Beat(env=on_our_redis), WebServer(env=on_our_redis)
    worker.start()
    beat.start()
    web.start()
    api = requests.Session()
    api.headers["Authorization"] = f"Token {Token.objects.create(user=deployer).key}"
    browser = requests.Session()
    client = Client()
    client.force_login(deployer)
    browser.cookies.set("sessionid", client.cookies["sessionid"].value)
    try:
        redis_server.stop()

        answer = api.post(f"{web.url}/api/v1/deploys/", json={"service": "app", "ref": "main"}, timeout=30)
        assert answer.status_code == 503, answer.text
        body = answer.json()
        deploy = Deploy.objects.get(pk=body["deploy"]["id"])
        assert body["error"] == (
            f"deploy #{deploy.pk} is recorded, but the task queue is unreachable: it waits for the queue and "
            "starts as soon as the queue is back (its page shows it); nothing else needs doing"
        )
        assert deploy.status == DeployStatus.QUEUED and deploy.queue_waiting_since is not None
        page = browser.get(f"{web.url}/deploys/{deploy.pk}/", timeout=10).text
        assert "Waiting for the task queue" in page

        again = api.post(f"{web.url}/api/v1/deploys/", json={"service": "app", "ref": "main"}, timeout=30)
        assert again.status_code == 409 and "is queued (waiting for the task queue)" in again.json()["error"]

        refresh = browser.post(
            f"{web.url}/services/app/refresh", headers={"X-CSRFToken": _csrf(browser, web)}, timeout=30
        )
        assert refresh.status_code == 200 and "could not ask for a refresh" in refresh.text.lower()
        assert Service.objects.get(name="app").refresh_requested_at is None, "a retry is not throttled"
        assert "Traceback" not in web.log() and "Internal Server Error" not in web.log(), web.log()

        redis_server.start()
        done = wait_for_deploy(deploy.pk, worker, timeout=120)
        assert done.status == DeployStatus.SUCCEEDED, done.reason
        assert done.log_lines.filter(message__startswith="the task queue is back: sent to a worker").exists()
    finally:
        for process in (web, beat, worker):
            process.stop()


def _csrf(session: requests.Session, web: WebServer) -> str:
    session.get(f"{web.url}/services/app/", timeout=10)
    return session.cookies["csrftoken"]
