"""ChatOps: the /gantry slash command and the Approve/Rollback/Unlock buttons, as Slack sends them
(signed, form-encoded), carried out by a real worker as the Gantry user behind the Slack user."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from slack_sdk.models.blocks import Block

from deployer.chatops import CommandError, command_parse
from deployer.choices import AuditAction, DeployStatus, Role
from deployer.deploys.request import deploy_request
from deployer.models import AuditEntry, Deploy, DeployLog, Environment, Grant, SlackIdentity, SlackMessage
from tests.fakes.slack import FakeSlack, Message, SignedRequest, sign
from tests.support.catalogs import MakeEnvironment
from tests.support.deploys import deploy_and_wait
from tests.support.slack import ACTIONS, answer, send, settled, told
from tests.support.waiting import wait_for_deploy, wait_until
from tests.support.worker import Worker

BASE = django_settings.GANTRY_BASE_URL  # the worker's links start with it


def buttons(message: Message) -> dict[str, dict[str, Any]]:
    """The message's buttons by action id (the blocks round-trip through slack_sdk's models)."""
    assert [block.to_dict() for block in Block.parse_all(message.blocks)] == message.blocks
    found = {}
    for block in message.blocks:
        if block["type"] == "actions":
            found.update({element["action_id"]: element for element in block["elements"]})
    return found


def story_of(slack: FakeSlack, deploy: Deploy) -> Message:
    wait_until(lambda: settled(deploy), timeout=30)
    ts = SlackMessage.objects.get(deploy=deploy, kind=SlackMessage.Kind.STORY).ts
    return next(m for m in slack.top_level() if m.ts == ts)


# --- what Slack sends is checked before anything happens ------------------------------------


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "what you can ask"),
        ("help", "what you can ask"),
        ("ship app", "`ship` is not something Gantry does"),
        ("deploy", "name the service"),
        ("deploy app", "/gantry deploy <service> <branch> [environment]"),
        ("deploy App! main", "`App!` is not a service name"),
        ("status app extra", "takes only the service's name"),
        ("lock app prod", "say why"),
        ("unlock app", "name the environment"),
        ("deploy app main " + "x" * 1000, "a command is at most 1000"),
    ],
)
def test_a_command_gantry_cannot_understand_is_explained(text: str, says: str) -> None:
    with pytest.raises(CommandError, match=says.replace("[", r"\[").replace("]", r"\]")):
        command_parse(text)


def test_commands_are_parsed() -> None:
    assert command_parse("deploy app feature/x prod").as_dict() == {
        "verb": "deploy",
        "service": "app",
        "environment": "prod",
        "ref": "feature/x",
        "reason": "",
    }
    assert command_parse("  LOCK app prod   DB migration  running ").reason == "DB migration running"
    assert command_parse("unlock app prod").reason == ""


def test_requests_not_signed_by_slack_are_refused_with_401(db: None, slack: FakeSlack, settings: Any) -> None:
    good = slack.slash_command("status app", user_id="U0DANA")
    tampered = SignedRequest(good.body.replace(b"status", b"deploy"), good.headers, good.response_url)
    stale = slack.slash_command("status app", user_id="U0DANA", age=6 * 60)
    wrong_secret = slack.slash_command("status app", user_id="U0DANA", secret="not-the-secret")
    unsigned = SignedRequest(good.body, {}, good.response_url)

    assert send(tampered).status_code == 401
    assert "bad X-Slack-Signature" in send(wrong_secret).json()["error"]
    refused = send(stale)
    assert refused.status_code == 401 and "more than 300 s" in refused.json()["error"]
    assert send(unsigned).status_code == 401
    press = slack.block_actions("gantry_approve", "1", user_id="U0DANA", age=301)
    assert send(press, ACTIONS).status_code == 401

    settings.SLACK_SIGNING_SECRET = ""
    off = send(good)
    assert off.status_code == 403 and "SLACK_SIGNING_SECRET" in off.json()["error"]
    assert not slack.responses and Deploy.objects.count() == 0


def test_a_usage_mistake_is_answered_at_once_and_answers_go_only_to_slacks_hooks(db: None, slack: FakeSlack) -> None:
    response = send(slack.slash_command("deploy app", user_id="U0DANA"))
    assert response.status_code == 200
    assert response.json()["response_type"] == "ephemeral"
    assert "/gantry deploy <service> <branch> [environment]" in response.json()["text"]

    elsewhere = slack.slash_command("status app", user_id="U0DANA")
    body = elsewhere.body.replace(slack.url.encode().replace(b":", b"%3A").replace(b"/", b"%2F"), b"http%3A%2F%2Fevil")
    forged = sign(slack.signing_secret, body, int(elsewhere.headers["X-Slack-Request-Timestamp"]))
    headers = {**elsewhere.headers, "X-Slack-Signature": forged}
    refused = send(SignedRequest(body, headers, ""))
    assert refused.status_code == 400 and "response_url must start with" in refused.json()["error"]


# --- the slash command, end to end -----------------------------------------------------------


@pytest.mark.slow
def test_deploy_from_slack_runs_as_the_mapped_gantry_user(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, slack: FakeSlack
) -> None:
    make_environment()
    slack.add_user("DANA@example.com", "U0DANA", "dana")
    request = slack.slash_command("deploy app main", user_id="U0DANA")

    acknowledged = send(request)
    assert acknowledged.status_code == 200
    assert acknowledged.json() == {
        "response_type": "ephemeral",
        "text": ":hourglass_flowing_sand: On it: deploying `main` of *app* (first environment)…",
    }
    said = answer(slack, request)
    deploy = Deploy.objects.get()
    assert said.startswith(f":rocket: Deploy <{BASE}/deploys/{deploy.pk}/|#{deploy.pk}> of `main`")
    assert deploy.requested_by == deployer, "the Slack user is dana (same e-mail, any case)"
    deploy = wait_for_deploy(deploy.pk, celery_worker)
    assert deploy.status == DeployStatus.SUCCEEDED, deploy.reason
    assert DeployLog.objects.filter(deploy=deploy, message="requested from Slack by dana").exists()
    assert SlackIdentity.objects.get(slack_user_id="U0DANA").user == deployer

    # The mapping is kept: the next command costs no Slack lookup.
    lookups = slack.count(path_contains="users.info")
    status = slack.slash_command("status app", user_id="U0DANA")
    assert send(status).status_code == 200
    said = answer(slack, status)
    assert "• *test*: runs `main`" in said and "/services/app/|open in Gantry>" in said
    assert slack.count(path_contains="users.info") == lookups


@pytest.mark.slow
def test_unknown_slack_users_are_told_why_and_nothing_happens(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, slack: FakeSlack
) -> None:
    make_environment()
    slack.add_user("stranger@elsewhere.example", "U0STRANGER", "stranger")
    slack.add_user("", "U0NOMAIL", "nomail")
    cases = {
        "U0STRANGER": "Gantry does not know you: no active Gantry account has the e-mail of your Slack profile "
        "(stranger@elsewhere.example)",
        "U0GHOST": "Slack says your user is deactivated or unknown",
        "U0NOMAIL": "users:read.email scope",
    }
    for user_id, says in cases.items():
        request = slack.slash_command("deploy app main", user_id=user_id)
        assert send(request).status_code == 200
        assert says in answer(slack, request)
    assert Deploy.objects.count() == 0

    # A person who gets an account is recognised at once (a miss is not kept).
    get_user_model().objects.create_user("sam", "stranger@elsewhere.example", "pw")
    request = slack.slash_command("status app", user_id="U0STRANGER")
    send(request)
    assert answer(slack, request).startswith("*app*")


@pytest.mark.slow
def test_slack_follows_the_same_permission_and_lock_rules_as_the_browser(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, slack: FakeSlack
) -> None:
    environment = make_environment()
    get_user_model().objects.create_user("vic", "vic@example.com", "pw")  # a viewer: no grant
    slack.add_user("vic@example.com", "U0VIC", "vic")
    slack.add_user("dana@example.com", "U0DANA", "dana")

    def ask(user_id: str, text: str) -> str:
        request = slack.slash_command(text, user_id=user_id)
        assert send(request).status_code == 200
        return answer(slack, request)

    refused = ask("U0VIC", "deploy app main test")
    assert refused.startswith(":no_entry: vic may not deploy to app/test: that needs a deployer grant")
    assert ask("U0VIC", "lock app test nope").startswith(":no_entry: vic may not")
    assert "has no environment 'prod'; it has: test" in ask("U0DANA", "deploy app main prod")
    assert "there is no service 'nope'; services: app" in ask("U0DANA", "status nope")
    assert "app has no branch 'nope'" in ask("U0DANA", "deploy app nope")

    assert ask("U0DANA", "lock app test DB migration running") == (":lock: Locked *app* → *test*: DB migration running")
    environment.refresh_from_db()
    assert environment.lock_reason == "DB migration running" and environment.locked_by == deployer
    refused = ask("U0DANA", "deploy app main")
    assert refused.startswith(":no_entry: app/test is locked by dana") and "DB migration running" in refused
    assert "/services/app/test/plan?ref=main|Open the plan in Gantry>" in refused
    assert ":lock: locked by dana" in ask("U0DANA", "status app")
    assert ask("U0DANA", "unlock app test migration done") == ":unlock: Unlocked *app* → *test*."
    assert not Environment.objects.get(pk=environment.pk).is_locked
    unlocked = AuditEntry.objects.get(action=AuditAction.UNLOCKED)
    assert unlocked.actor_name == "dana" and unlocked.detail.endswith("; migration done")
    assert ask("U0DANA", "unlock app test") == ":no_entry: app/test is not locked"
    assert Deploy.objects.count() == 0


# --- the buttons ------------------------------------------------------------------------------


@pytest.mark.slow
def test_approve_from_slack_needs_a_second_person_and_updates_the_message(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, slack: FakeSlack
) -> None:
    environment = told(make_environment(options={"require_approval": "true"}))
    approver = get_user_model().objects.create_user("pat", "pat@example.com", "pw")
    Grant.objects.create(principal="pat", role=Role.APPROVER)
    slack.add_user("dana@example.com", "U0DANA", "dana")
    slack.add_user("pat@example.com", "U0PAT", "pat")

    deploy = deploy_request(environment=environment, ref="main", user=deployer)
    message = story_of(slack, deploy)
    approve = buttons(message)["gantry_approve"]
    assert approve["value"] == str(deploy.pk) and approve["style"] == "primary"
    assert approve["confirm"]["title"]["text"] == f"Approve deploy #{deploy.pk}?"
    assert approve["confirm"]["confirm"]["text"] == "Approve" and approve["confirm"]["deny"]["text"] == "Cancel"

    own = slack.block_actions("gantry_approve", str(deploy.pk), user_id="U0DANA", message=message)
    assert send(own, ACTIONS).status_code == 200
    assert f"you requested deploy #{deploy.pk}; a second person must approve it" in answer(slack, own)

    press = slack.block_actions("gantry_approve", str(deploy.pk), user_id="U0PAT", message=message)
    assert send(press, ACTIONS).status_code == 200
    assert answer(slack, press).startswith(":white_check_mark: You approved deploy")
    deploy = wait_for_deploy(deploy.pk, celery_worker)
    assert deploy.status == DeployStatus.SUCCEEDED and deploy.approved_by == approver
    message = story_of(slack, deploy)
    assert "pat approved a deploy" in str(message.blocks) and "gantry_approve" not in buttons(message)

    again = slack.block_actions("gantry_approve", str(deploy.pk), user_id="U0PAT", message=message)
    send(again, ACTIONS)
    assert "only a deploy awaiting approval can be approved" in answer(slack, again)


@pytest.mark.slow
def test_rollback_and_unlock_from_slack(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, slack: FakeSlack
) -> None:
    environment = told(make_environment())
    slack.add_user("dana@example.com", "U0DANA", "dana")
    deploy_and_wait(environment, "main", deployer, celery_worker)
    shipped = deploy_and_wait(environment, "feature/shout", deployer, celery_worker)
    message = story_of(slack, shipped)
    rollback = buttons(message)["gantry_rollback"]
    assert rollback["style"] == "danger" and "is locked until someone unlocks it" in rollback["confirm"]["text"]["text"]

    press = slack.block_actions("gantry_rollback", str(shipped.pk), user_id="U0DANA", message=message)
    assert send(press, ACTIONS).status_code == 200
    said = answer(slack, press)
    assert said.startswith(":leftwards_arrow_with_hook: Rolling *app* → *test* back to `main`")
    back = wait_for_deploy(Deploy.objects.latest("pk").pk, celery_worker)
    assert back.status == DeployStatus.SUCCEEDED and back.rollback_of_id is not None
    environment.refresh_from_db()
    assert environment.is_locked, "a rollback locks the environment"

    # The rolled-back deploy's message says so and gives up its buttons; the newest one offers Unlock.
    old = story_of(slack, shipped)
    assert f"dana rolled back from this in <{BASE}/deploys/{back.pk}/|#{back.pk}>" in str(old.blocks)
    assert not buttons(old)
    newest = story_of(slack, back)
    assert ":lock: test is locked by Gantry" in str(newest.blocks)
    unlock = buttons(newest)["gantry_unlock"]
    assert unlock["value"] == str(environment.pk)

    stale = slack.block_actions("gantry_rollback", str(shipped.pk), user_id="U0DANA", message=old)
    send(stale, ACTIONS)
    assert f"deploy #{shipped.pk} is not what runs in app/test" in answer(slack, stale)

    press = slack.block_actions("gantry_unlock", str(environment.pk), user_id="U0DANA", message=newest)
    assert send(press, ACTIONS).status_code == 200
    assert answer(slack, press) == ":unlock: Unlocked *app* → *test*."
    assert not Environment.objects.get(pk=environment.pk).is_locked
    wait_until(lambda: "gantry_unlock" not in buttons(story_of(slack, back)), timeout=30)
    assert ":lock:" not in str(story_of(slack, back).blocks)
