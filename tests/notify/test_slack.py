"""Slack: one message per deploy, updated in place, sent through the outbox by a real worker to the fake Web API."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.urls import reverse
from slack_sdk.models.blocks import Block

from deployer.choices import DeployStatus
from deployer.demo import setup
from deployer.deploys.actions import deploy_approve
from deployer.deploys.request import deploy_request
from deployer.models import Deploy, Environment, SlackAttempt, SlackMessage, Team
from deployer.notify.outbox import message_send, story_changed
from tests.fakes.slack import FakeSlack
from tests.support.apitests import SMOKE
from tests.support.catalogs import AppRepo, MakeEnvironment
from tests.support.deploys import deploy_and_wait
from tests.support.slack import settled, told
from tests.support.waiting import wait_for_deploy, wait_until
from tests.support.worker import Worker

pytestmark = pytest.mark.slow


def test_a_deploy_tells_its_story_in_one_message_updated_in_place(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, slack: FakeSlack
) -> None:
    environment = told(make_environment(options={"batch_size": "2"}))
    first = deploy_and_wait(environment, "main", deployer, celery_worker)
    wait_until(lambda: settled(first))
    deploy = deploy_and_wait(environment, "feature/shout", deployer, celery_worker)
    wait_until(lambda: settled(deploy))

    messages = slack.top_level("C0WEB")
    assert len(messages) == 2, "one message per deploy"
    story = next(m for m in messages if f"#{deploy.pk}>" in str(m.blocks))
    assert story.edits >= 1, "started, then updated in place (batches, the end)"
    assert "app → test: deploying feature/shout" in story.text and "succeeded" in story.text
    rendered = str(story.blocks)
    assert f"`{deploy.sha[:8]}`" in rendered and "dana" in rendered
    assert "*Commits since the previous deploy*\\n1" in rendered
    assert f"/deploys/{deploy.pk}/|#{deploy.pk}>" in rendered
    assert ":white_check_mark:" in rendered and "3 of 3 live" in rendered
    assert [block.to_dict() for block in Block.parse_all(story.blocks)] == story.blocks, "valid Block Kit"
    message = SlackMessage.objects.get(deploy=deploy)
    assert (message.state, message.channel, message.ts) == ("sent", "C0WEB", story.ts)
    versions = list(SlackAttempt.objects.filter(message=message, ok=True).values_list("version", flat=True))
    assert versions == sorted(versions), "never an older version after a newer one"
    page = Client()
    page.force_login(deployer)
    assert "Slack: sent to C0WEB" in page.get(reverse("deploy", args=[deploy.pk])).content.decode()


def test_a_rate_limited_or_unreachable_slack_never_slows_the_deploy_and_catches_up(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, slack: FakeSlack
) -> None:
    environment = told(make_environment())
    slack.fail(r"/api/chat.postMessage", status=503, times=2)
    slack.rate_limit("chat.update", retry_after=2, times=2)

    deploy = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert deploy.status == DeployStatus.SUCCEEDED, deploy.reason
    assert deploy.duration is not None and deploy.duration.total_seconds() < 15

    wait_until(lambda: settled(deploy), timeout=40)
    (story,) = slack.top_level("C0WEB")
    assert "succeeded" in story.text
    answers = list(SlackAttempt.objects.filter(message__deploy=deploy).values_list("method", "ok", "answer"))
    assert ("chat.update", False, "ratelimited: retry after 2 s") in answers
    assert any(not ok and "503" in answer for _, ok, answer in answers), answers
    assert answers[-1][1] is True


def test_a_channel_slack_does_not_know_is_recorded_and_the_deploy_goes_on(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, slack: FakeSlack
) -> None:
    environment = told(make_environment(), channel="#nowhere")
    deploy = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert deploy.status == DeployStatus.SUCCEEDED
    wait_until(lambda: SlackMessage.objects.filter(deploy=deploy, state="failed").exists())
    message = SlackMessage.objects.get(deploy=deploy)
    assert message.last_error == "channel_not_found"
    assert not slack.top_level()


def test_without_a_token_the_message_is_logged_and_shown_on_the_deploy_page(
    environment: Environment, deployer: AbstractBaseUser, deployer_client: Client, settings: object
) -> None:
    settings.SLACK_BOT_TOKEN = ""
    environment = told(environment)
    deploy = Deploy.objects.create(environment=environment, ref="main", sha="a" * 40, requested_by=deployer)
    story_changed(deploy)
    message_send(SlackMessage.objects.get(deploy=deploy).pk)

    message = SlackMessage.objects.get(deploy=deploy)
    assert message.state == "logged" and "app → test: deploying main" in message.text
    page = deployer_client.get(reverse("deploy", args=[deploy.pk])).content.decode()
    assert "Slack is not configured; it would have said:" in page and "deploying main" in page


@pytest.mark.slow
def test_test_results_go_as_a_thread_reply_and_a_failure_calls_the_team_and_the_authors(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    slack: FakeSlack,
    app_port: int,
    app_repo: AppRepo,
) -> None:
    setup.repo_branch(app_repo.path, "quiet-change", {"notes.txt": "nothing loud\n"}, "A quiet change")
    slack.add_user("demo@gantry.invalid", "U0AUTHOR", "demo-author")
    options = {"host_base_url": f"http://{{address}}:{app_port}", "test_variables": "{loud: Hello}"}
    environment = told(make_environment(hosts=None, options=options, service_yaml=SMOKE))
    Team.objects.update(slack_group="S0WEBTEAM")
    first = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert first.status == DeployStatus.SUCCEEDED, first.reason
    wait_until(lambda: SlackMessage.objects.filter(deploy=first, kind="reply", state="sent").exists())
    (story,) = slack.top_level("C0WEB")
    (reply,) = slack.replies(story.ts)
    assert reply.text == ":test_tube: Post-deploy API tests passed: 3 runs"

    Environment.objects.filter(pk=environment.pk).update(test_variables={"loud": "HELLO"})
    failing = deploy_and_wait(environment, "quiet-change", deployer, celery_worker)
    assert failing.status == DeployStatus.TESTS_FAILED
    wait_until(lambda: SlackMessage.objects.filter(deploy=failing, kind="reply", state="sent").exists())
    story = next(m for m in slack.top_level("C0WEB") if f"#{failing.pk}>" in str(m.blocks))
    (reply,) = slack.replies(story.ts)
    assert reply.text.startswith(":x: Post-deploy API tests failed: 3 of 3 runs")
    assert "<!subteam^S0WEBTEAM>" in reply.text
    assert "<@U0AUTHOR>" in reply.text, "the author of the shipped commit (Gantry Demo's address)"
    assert "expected `HELLO`, got `Hello from the Gantry demo`" in str(reply.blocks)


@pytest.mark.slow
def test_a_deploy_awaiting_approval_is_told_and_the_approval_updates_the_message(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, slack: FakeSlack
) -> None:
    environment = told(make_environment(options={"require_approval": "true"}))
    deploy = deploy_request(environment=environment, ref="main", user=deployer)
    wait_until(lambda: settled(deploy))
    (story,) = slack.top_level("C0WEB")
    assert "awaiting approval" in story.text

    approver = get_user_model().objects.create_superuser("pat", "pat@example.com", "pw")
    deploy_approve(deploy=deploy, user=approver)
    deploy = wait_for_deploy(deploy.pk, celery_worker)
    wait_until(lambda: settled(deploy))
    (story,) = slack.top_level("C0WEB")
    assert "succeeded" in story.text and "pat approved a deploy" in str(story.blocks)
