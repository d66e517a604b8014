"""The task queue (Redis) goes down: every path that enqueues answers clearly, a deploy asked for meanwhile is
recorded and waits, and it starts by itself once Redis is back. Redis, web, worker and beat are real processes."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest
import requests
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from knox.models import AuthToken

from deployer.choices import DeployStatus
from deployer.models import Deploy, Service
from tests.fakes.github import sign
from tests.fakes.slack import FakeSlack
from tests.support.catalogs import MakeEnvironment
from tests.support.constants import JENKINS_HOOK_TOKEN, WEBHOOK_SECRET
from tests.support.redis import RedisServer
from tests.support.waiting import wait_for_deploy
from tests.support.webserver import WebServer
from tests.support.worker import BASE_DIR, Beat, Worker


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.mark.slow
def test_with_redis_down_a_deploy_is_recorded_waits_and_starts_when_redis_is_back(
    make_environment: MakeEnvironment, deployer: AbstractBaseUser, redis_server: RedisServer, slack_server: FakeSlack
) -> None:
    make_environment()
    Service.objects.filter(name="app").update(jenkins_job="app")
    on_our_redis = {
        "REDIS_URL": redis_server.url,
        "GANTRY_BROKER_PREFIX": "",
        "SLACK_SIGNING_SECRET": slack_server.signing_secret,
        "SLACK_RESPONSE_URL_PREFIX": slack_server.url + "/",
        "JENKINS_URL": "http://127.0.0.1:9",  # on, but never called by the web process
        "JENKINS_WEBHOOK_TOKEN": JENKINS_HOOK_TOKEN,
        "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    worker, beat, web = Worker(env=on_our_redis), Beat(env=on_our_redis), WebServer(env=on_our_redis)
    worker.start()
    beat.start()
    web.start()
    api = requests.Session()
    api.headers["Authorization"] = f"Token {AuthToken.objects.create(user=deployer)[1]}"
    browser = requests.Session()
    client = Client()
    client.force_login(deployer)
    browser.cookies.set("sessionid", client.cookies["sessionid"].value)
    try:
        redis_server.stop()

        cli = gantry_cli(["deploy", "app", "test", "main"], web, api.headers["Authorization"].split()[1])
        assert cli.returncode == 0, cli.stderr
        assert "is recorded, but the task queue is unreachable: it waits for the queue" in cli.stderr
        waiting = Deploy.objects.get()
        cancelled = api.post(f"{web.url}/api/v1/deploys/{waiting.pk}/cancel", timeout=30)
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text

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

        slash = slack_server.slash_command("status app", user_id="U0DANA")
        form = {**slash.headers, "Content-Type": "application/x-www-form-urlencoded"}
        said = requests.post(f"{web.url}/hooks/slack/commands", data=slash.body, headers=form, timeout=30)
        assert said.status_code == 200 and "task queue is unreachable, so nothing was done" in said.json()["text"]
        jenkins = requests.post(
            f"{web.url}/hooks/jenkins", json={"name": "app"}, headers={"X-Gantry-Token": JENKINS_HOOK_TOKEN}, timeout=30
        )
        assert jenkins.status_code == 503 and "the scheduled build sync will catch up" in jenkins.json()["error"]
        push = json.dumps({"ref": "refs/heads/main", "repository": {"full_name": "acme/nothing"}}).encode()
        hook = requests.post(
            f"{web.url}/hooks/github",
            data=push,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": "d-queue-down",
                "X-Hub-Signature-256": sign(push, WEBHOOK_SECRET),
            },
            timeout=30,
        )
        assert hook.status_code == 202, hook.text
        assert "Traceback" not in web.log() and "Internal Server Error" not in web.log(), web.log()

        redis_server.start()
        done = wait_for_deploy(deploy.pk, worker, timeout=120)
        assert done.status == DeployStatus.SUCCEEDED, done.reason
        assert done.log_lines.filter(message__startswith="the task queue is back: sent to a worker").exists()
    finally:
        for process in (web, beat, worker):
            process.stop()


def gantry_cli(args: list[str], web: WebServer, token: str) -> subprocess.CompletedProcess[str]:
    """The `gantry` command, as a person runs it, against the web process."""
    env = {"PATH": os.environ["PATH"], "HOME": str(BASE_DIR / "var"), "GANTRY_URL": web.url, "GANTRY_TOKEN": token}
    command = [str(BASE_DIR / ".venv" / "bin" / "gantry"), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def _csrf(session: requests.Session, web: WebServer) -> str:
    session.get(f"{web.url}/services/app/", timeout=10)
    return session.cookies["csrftoken"]
