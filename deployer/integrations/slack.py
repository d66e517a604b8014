"""Slack's Web API through slack-sdk: post a message, update it, reply in its thread.

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
