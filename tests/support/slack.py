"""Slack: a team told, a message settled, a slash command sent and its answer."""

from __future__ import annotations

from typing import Any

from django.test import Client
from django.urls import reverse

from deployer.models import Deploy, Environment, SlackMessage, Team
from tests.fakes.slack import FakeSlack, SignedRequest
from tests.support.waiting import wait_until

COMMANDS = reverse("hook-slack-commands")
ACTIONS = reverse("hook-slack-actions")


def settled(deploy: Deploy) -> bool:
    message = SlackMessage.objects.filter(deploy=deploy).first()
    return message is not None and message.sent_version == message.version and message.claimed_at is None


def told(environment: Environment, channel: str = "#web-deploys") -> Environment:
    Team.objects.filter(services__environments=environment).update(slack_channel=channel)
    return Environment.objects.select_related("service__team").get(pk=environment.pk)


def answer(slack: FakeSlack, request: SignedRequest) -> str:
    """The worker's answer to the person, through the request's response_url."""
    wait_until(lambda: bool(slack.answers(request)), timeout=30)
    (said,) = slack.answers(request)
    assert said["response_type"] == "ephemeral" and said["replace_original"] is False
    return str(said["text"])


def send(request: SignedRequest, url: str = COMMANDS) -> Any:
    """POST what Slack would, byte for byte (the signature covers the raw body)."""
    return Client().post(
        url, data=request.body, content_type="application/x-www-form-urlencoded", headers=request.headers
    )
