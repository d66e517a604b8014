"""Slack's Web API through slack-sdk: post a message, update it, reply in its thread,
look a user up, answer a slash command or button press (response_url), and check
that a request really comes from Slack (signing secret).

Errors come out as three kinds, because the outbox treats them differently:
SlackRateLimited (429: wait `retry_after` seconds), SlackUnavailable (network,
5xx: retry with back-off) and SlackRefused (Slack said `ok: false`: retrying
the same thing will not help; the error code says why).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any
from urllib.error import URLError

from django.conf import settings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

SIGNATURE_WINDOW = 5 * 60  # Slack's advice: refuse requests older than five minutes (replays)


class SlackError(Exception):
    pass


class SlackRateLimited(SlackError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Slack rate limit: retry after {retry_after} s")
        self.retry_after = retry_after


class SlackUnavailable(SlackError):
    """Slack could not be reached or failed on its side."""


class SlackRefused(SlackError):
    """Slack answered ok: false; `code` is its error code (channel_not_found, msg_too_long...)."""

    def __init__(self, code: str) -> None:
        super().__init__(f"Slack refused it: {code}")
        self.code = code


@dataclass(frozen=True)
class Posted:
    channel: str  # the channel id Slack answered with
    ts: str


def enabled() -> bool:
    return bool(settings.SLACK_BOT_TOKEN)


@functools.cache
def _client(token: str, base_url: str, timeout: int) -> WebClient:
    # slack-sdk retries a failed connection once by default; rate limits are the outbox's business.
    return WebClient(token=token, base_url=base_url, timeout=timeout)


def client() -> WebClient:
    return _client(settings.SLACK_BOT_TOKEN, settings.SLACK_API_URL, settings.SLACK_TIMEOUT)


def post(channel: str, *, text: str, blocks: list[dict[str, Any]], thread_ts: str = "") -> Posted:
    # Reference: https://api.slack.com/methods/chat.postMessage
    arguments: dict[str, Any] = {"channel": channel, "text": text, "blocks": blocks, "unfurl_links": False}
    if thread_ts:
        arguments["thread_ts"] = thread_ts
    answer = _call("chat_postMessage", **arguments)
    return Posted(answer["channel"], answer["ts"])


def update(channel: str, ts: str, *, text: str, blocks: list[dict[str, Any]]) -> None:
    # Reference: https://api.slack.com/methods/chat.update
    _call("chat_update", channel=channel, ts=ts, text=text, blocks=blocks)


def user_by_email(email: str) -> str | None:
    """The Slack user id of `email`, or None when Slack knows no such user."""
    # Reference: https://api.slack.com/methods/users.lookupByEmail
    try:
        answer = _call("users_lookupByEmail", email=email)
    except SlackRefused as exc:
        if exc.code == "users_not_found":
            return None
        raise
    return str(answer["user"]["id"])


@dataclass(frozen=True)
class SlackUser:
    id: str
    name: str
    email: str  # "" when the app lacks the users:read.email scope or the profile has none
    active: bool  # not deactivated, not a bot


def user_info(user_id: str) -> SlackUser | None:
    """Who `user_id` is; None when Slack knows no such user."""
    # Reference: https://api.slack.com/methods/users.info
    try:
        answer = _call("users_info", user=user_id)
    except SlackRefused as exc:
        if exc.code == "user_not_found":
            return None
        raise
    user = answer.get("user") or {}
    profile = user.get("profile") or {}
    return SlackUser(
        id=str(user.get("id", user_id)),
        name=str(user.get("name", "")),
        email=str(profile.get("email", "")),
        active=not user.get("deleted") and not user.get("is_bot"),
    )


def respond(response_url: str, *, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
    """Answer a slash command or a button press, seen only by the person who asked (ephemeral).

    A response_url takes five answers within 30 minutes; Slack answers 404
    (expired_url, used_url) after that, which is SlackRefused.
    """
    # Reference: https://api.slack.com/interactivity/handling#message_responses
    try:
        answer = WebhookClient(response_url, timeout=settings.SLACK_TIMEOUT).send(
            text=text, blocks=blocks, response_type="ephemeral", replace_original=False
        )
    except (URLError, OSError) as exc:
        raise SlackUnavailable(f"Slack could not be reached ({exc})") from exc
    if answer.status_code == 429:
        raise SlackRateLimited(int(answer.headers.get("Retry-After", "1") or 1))
    if answer.status_code >= 500:
        raise SlackUnavailable(f"Slack answered HTTP {answer.status_code}")
    if answer.status_code != 200:
        raise SlackRefused(answer.body.strip()[:100] or f"HTTP {answer.status_code}")


def signature_problem(body: bytes, timestamp: str, signature: str, *, secret: str, now: float) -> str:
    """Why a request does not come from Slack ("" when it does): signed with the
    signing secret over `v0:timestamp:raw body`, and no older than five minutes."""
    # Reference: https://api.slack.com/authentication/verifying-requests-from-slack
    if not timestamp or not signature:
        return "missing X-Slack-Request-Timestamp or X-Slack-Signature header"
    try:
        age = abs(now - int(timestamp))
    except ValueError:
        return "X-Slack-Request-Timestamp is not a number"
    if age > SIGNATURE_WINDOW:
        return (
            f"the request is {int(age)} s old (more than {SIGNATURE_WINDOW} s): a replay, "
            "or this machine's clock is wrong"
        )
    if not SignatureVerifier(secret).is_valid(body=body, timestamp=timestamp, signature=signature):
        return "bad X-Slack-Signature: check SLACK_SIGNING_SECRET against the app's Basic Information page"
    return ""


def _call(method: str, **arguments: Any) -> dict[str, Any]:
    try:
        response = getattr(client(), method)(**arguments)
    except SlackApiError as exc:
        status = exc.response.status_code
        if status == 429:
            raise SlackRateLimited(int(exc.response.headers.get("Retry-After", "1") or 1)) from exc
        if status >= 500:
            raise SlackUnavailable(f"Slack answered HTTP {status}") from exc
        raise SlackRefused(str(exc.response.get("error") or f"HTTP {status}")) from exc
    except (URLError, OSError, SlackRequestError) as exc:
        raise SlackUnavailable(f"Slack could not be reached ({exc})") from exc
    return dict(response.data) if isinstance(response.data, dict) else {}
