"""The Slack outbox: deploys write what to say; workers say it.

A deploy only (re)renders its story into a SlackMessage row and enqueues a
send after commit, so a Slack outage or rate limit never slows or fails it.
A send claims the row (one sender per message at a time), always sends the
newest version, and loops until what Slack shows is what the row says, so
updates never arrive out of order and a burst of changes becomes one update.
Updates to one message are spaced by SLACK_UPDATE_INTERVAL. Every call and
Slack's answer is kept (SlackAttempt). Without a token the text goes to the
log and the deploy page shows it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from deployer import queue
from deployer.integrations import slack
from deployer.models import Deploy, Environment, SlackAttempt, SlackMessage
from deployer.notify import story

logger = logging.getLogger(__name__)

CLAIM_SECONDS = 60  # longer than a Slack call may take; a dead sender's claim expires


class SendLater(Exception):
    """Try this message again in `delay` seconds (rate limit, throttle, another sender, Slack down)."""

    def __init__(self, delay: float, why: str) -> None:
        super().__init__(why)
        self.delay = delay


def channel_for(deploy: Deploy) -> str:
    team = deploy.environment.service.team
    return (team.slack_channel if team else "") or settings.SLACK_DEFAULT_CHANNEL


def story_changed(deploy: Deploy) -> None:
    """Mark the deploy's story changed (a new version) and send it once this transaction commits.

    The text is rendered by the sender, from the database as it is then: a
    burst of changes becomes one update, and it includes what the caller
    writes after this call in the same transaction (an audit entry).
    """
    channel = channel_for(deploy)
    if not channel:
        return
    with transaction.atomic():
        message, created = SlackMessage.objects.get_or_create(
            deploy=deploy, kind=SlackMessage.Kind.STORY, defaults={"channel": channel, "text": ""}
        )
        if not created:
            _bump(message)
    queue.enqueue_after_commit(queue.SEND_SLACK, message.pk)
    if created:
        # The environment's previous message drops its lock line and its Rollback/Unlock buttons:
        # only the newest message speaks for the environment.
        _earlier_story_changed(deploy)


def environment_changed(environment: Environment) -> None:
    """A lock or unlock: the newest message about the environment shows it (and its Unlock button)."""
    message = (
        SlackMessage.objects.filter(kind=SlackMessage.Kind.STORY, deploy__environment=environment)
        .order_by("-deploy_id")
        .first()
    )
    if message is not None:
        _bump(message)
        queue.enqueue_after_commit(queue.SEND_SLACK, message.pk)


def _earlier_story_changed(deploy: Deploy) -> None:
    earlier = (
        SlackMessage.objects.filter(
            kind=SlackMessage.Kind.STORY, deploy__environment=deploy.environment_id, deploy_id__lt=deploy.pk
        )
        .order_by("-deploy_id")
        .first()
    )
    if earlier is not None:
        _bump(earlier)
        queue.enqueue_after_commit(queue.SEND_SLACK, earlier.pk)


def _bump(message: SlackMessage) -> None:
    SlackMessage.objects.filter(pk=message.pk).exclude(state=SlackMessage.State.FAILED).update(
        version=F("version") + 1, state=SlackMessage.State.PENDING
    )


def tests_reported(deploy: Deploy) -> None:
    """Reply in the deploy's thread with its API test results (sent after the story has its ts)."""
    channel = channel_for(deploy)
    if not channel:
        return
    message = SlackMessage.objects.create(deploy=deploy, kind=SlackMessage.Kind.REPLY, channel=channel, text="")
    queue.enqueue_after_commit(queue.SEND_SLACK, message.pk)


def notice(text: str, channel: str = "") -> None:
    """A message about no deploy (`text` escaped by the caller), to `channel` or Slack's default channel;
    sent by a worker like every other (logged when Slack has no token)."""
    to = channel or settings.SLACK_DEFAULT_CHANNEL
    if not to:
        return
    message = SlackMessage.objects.create(kind=SlackMessage.Kind.NOTICE, channel=to, text=text[:3000], blocks=[])
    queue.enqueue_after_commit(queue.SEND_SLACK, message.pk)


def message_send(message_id: int) -> None:
    """Bring Slack up to date with the message's newest version. SendLater when it must wait."""
    if not SlackMessage.objects.filter(pk=message_id).exists():
        return  # its deploy is gone (a test database flushed, a deploy deleted): nothing to tell
    if not _claim(message_id):
        raise SendLater(1, "another worker is sending this message")
    try:
        for _ in range(5):
            message = SlackMessage.objects.select_related("deploy").get(pk=message_id)
            if message.sent_version >= message.version or message.state == SlackMessage.State.FAILED:
                return
            _send_version(message)
    finally:
        SlackMessage.objects.filter(pk=message_id).update(claimed_at=None)


def _claim(message_id: int) -> bool:
    now = timezone.now()
    free = Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - timedelta(seconds=CLAIM_SECONDS))
    return bool(SlackMessage.objects.filter(pk=message_id).filter(free).update(claimed_at=now))


def _send_version(message: SlackMessage) -> None:
    version = message.version
    thread_ts = ""
    deploy = message.deploy
    if message.kind == SlackMessage.Kind.REPLY and deploy is not None:
        parent = SlackMessage.objects.filter(deploy=deploy, kind=SlackMessage.Kind.STORY).first()
        if parent is None or parent.state == SlackMessage.State.FAILED:
            SlackMessage.objects.filter(pk=message.pk).update(
                state=SlackMessage.State.FAILED,
                last_error="the deploy's own message was never posted, so there is no thread to reply in",
            )
            return
        if not parent.ts and slack.enabled():
            raise SendLater(2, "waiting for the deploy's message to be posted")
        thread_ts, message.channel = parent.ts, parent.channel
        message.text, message.blocks = story.tests_reply(deploy, _mentions(deploy))
    elif deploy is not None:
        message.text, message.blocks = story.story(deploy)  # (a notice's text is as it was made)
    SlackMessage.objects.filter(pk=message.pk).update(text=message.text, blocks=message.blocks)
    if not slack.enabled():
        logger.info("Slack (no token; not sent) to %s: %s", message.channel, message.text)
        _done(message, version, SlackMessage.State.LOGGED, ts=message.ts)
        return
    if message.ts and message.last_sent_at:
        wait = settings.SLACK_UPDATE_INTERVAL - (timezone.now() - message.last_sent_at).total_seconds()
        if wait > 0:
            raise SendLater(wait, "spacing updates to one message")
    method = "chat.update" if message.ts else "chat.postMessage"
    try:
        if message.ts:
            slack.update(message.channel, message.ts, text=message.text, blocks=message.blocks)
            ts, channel = message.ts, message.channel
        else:
            posted = slack.post(message.channel, text=message.text, blocks=message.blocks, thread_ts=thread_ts)
            ts, channel = posted.ts, posted.channel
    except slack.SlackRateLimited as exc:
        _attempt(message, method, version, False, f"ratelimited: retry after {exc.retry_after} s")
        raise SendLater(exc.retry_after, str(exc)) from exc
    except slack.SlackUnavailable as exc:
        _attempt(message, method, version, False, str(exc))
        raise SendLater(min(60, 2 ** min(message.attempts, 6)), str(exc)) from exc
    except slack.SlackRefused as exc:
        _attempt(message, method, version, False, exc.code)
        SlackMessage.objects.filter(pk=message.pk).update(state=SlackMessage.State.FAILED, last_error=exc.code)
        logger.warning("Slack refused %s of deploy #%s: %s", method, message.deploy_id, exc.code)
        return
    _attempt(message, method, version, True, "")
    _done(message, version, SlackMessage.State.SENT, ts=ts, channel=channel)


def _attempt(message: SlackMessage, method: str, version: int, ok: bool, answer: str) -> None:
    SlackAttempt.objects.create(message=message, method=method, version=version, ok=ok, answer=answer[:300])
    SlackMessage.objects.filter(pk=message.pk).update(attempts=F("attempts") + 1, last_error="" if ok else answer)


def _done(message: SlackMessage, version: int, state: str, *, ts: str, channel: str = "") -> None:
    values: dict[str, object] = {"sent_version": version, "state": state, "ts": ts, "last_sent_at": timezone.now()}
    if channel:
        values["channel"] = channel
    # Only forward: a slower sender of an older version never overwrites a newer record.
    SlackMessage.objects.filter(pk=message.pk, sent_version__lt=version).update(**values)


def _mentions(deploy: Deploy) -> list[str]:
    """Who hears about failed tests: the team's Slack group and the authors of the shipped commits."""
    if not deploy.api_test_runs.filter(ok=False).exists() or not slack.enabled():
        return []
    team = deploy.environment.service.team
    ids = [team.slack_group] if team and team.slack_group else []
    if deploy.previous_sha and deploy.previous_sha != deploy.sha:
        emails = set(deploy.commits.exclude(email="").values_list("email", flat=True)[:50])
        for email in sorted(emails)[:10]:
            try:
                user = slack.user_by_email(email)
            except slack.SlackError:
                user = None  # a mention is a courtesy: never hold the reply for it
            if user:
                ids.append(user)
    return [story.mention(i) for i in ids]
