"""A test-only fake of the part of Slack's Web API Gantry uses, answering in Slack's shapes.

slack-sdk's WebClient talks to it unmodified (`base_url=fake.api_url`). It keeps
the messages it was sent (per channel, by ts, with thread replies), and can
answer like Slack does when things go wrong: `ok: false` with an error code
(`channel_not_found`, `msg_too_long`, `invalid_auth`, `message_not_found`,
`user_not_found`), or HTTP 429 with `Retry-After` when rate limited.

It also plays Slack's side of ChatOps: `slash_command()` and `block_actions()`
build the signed requests Slack sends to an app (form-encoded, with
X-Slack-Signature over the raw body), and the `response_url` they carry points
back here, where the app's answers are kept (`responses`).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

from tests.fakes.server import FakeServer, Request, Response

TEXT_LIMIT = 40_000  # chat.postMessage truncates/refuses beyond this
BLOCKS_LIMIT = 50


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str = ""
    edits: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # every version, oldest first


@dataclass(frozen=True)
class SignedRequest:
    """What Slack POSTs to an app: the raw body and its headers."""

    body: bytes
    headers: dict[str, str]
    response_url: str


def sign(secret: str, body: bytes, timestamp: int) -> str:
    # Reference: https://api.slack.com/authentication/verifying-requests-from-slack
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class FakeSlack(FakeServer):
    token = "xoxb-fake-token"
    signing_secret = "8f742231b10e8888abcd99aaabbb85a5"
    team_id = "T0GANTRY"
    bot_id = "B0GANTRY"

    def __init__(self) -> None:
        super().__init__()
        self.channels: dict[str, str] = {}  # id -> name
        self.users: dict[str, dict[str, Any]] = {}  # email -> user
        self.messages: dict[tuple[str, str], Message] = {}
        self.rate_limits: dict[str, list[int]] = {}  # method -> [retry_after, times]
        self._clock = itertools.count(1)
        self._ts_lock = threading.Lock()
        self.responses: dict[str, list[dict[str, Any]]] = {}  # response_url key -> what the app answered
        self._requests_made = itertools.count(1)
        methods = ("auth.test", "chat.postMessage", "chat.update", "users.lookupByEmail", "users.info")
        for method in (*methods, "conversations.info"):
            self.route("POST", rf"/api/{method}", self._dispatch_method(method))
            self.route("GET", rf"/api/{method}", self._dispatch_method(method))
        self.route("POST", r"/(?:commands|actions)/T0GANTRY/(\w+)", self._respond)
        self.reset()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.faults.clear()
        self.channels = {"C0DEPLOYS": "deploys", "C0WEB": "web-deploys"}
        self.users = {}
        self.messages = {}
        self.rate_limits = {}
        self.responses = {}

    def add_user(self, email: str, user_id: str, name: str, *, deleted: bool = False) -> None:
        profile = {"email": email, "real_name": name.title(), "display_name": name} if email else {}
        self.users[email or user_id] = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": deleted,
            "is_bot": False,
            "profile": profile,
        }

    # --- Slack calling the app ---------------------------------------------------

    def slash_command(
        self, text: str, *, user_id: str, command: str = "/gantry", age: int = 0, secret: str = ""
    ) -> SignedRequest:
        """A slash command as Slack sends it; `age` seconds old; signed with `secret` (default: the right one)."""
        # Reference: https://api.slack.com/interactivity/slash-commands#app_command_handling
        key = f"C{next(self._requests_made)}"
        fields = {
            "token": "gIkuvaNzQIHg97ATvDxqgjtO",  # the deprecated verification token: apps must not rely on it
            "team_id": self.team_id,
            "team_domain": "gantry",
            "channel_id": "C0DEPLOYS",
            "channel_name": "deploys",
            "user_id": user_id,
            "user_name": self._name_of(user_id),
            "command": command,
            "text": text,
            "api_app_id": "A0GANTRY",
            "is_enterprise_install": "false",
            "response_url": f"{self.url}/commands/{self.team_id}/{key}",
            "trigger_id": f"13345224609.738474920.{key}",
        }
        return self._signed(urlencode(fields).encode(), fields["response_url"], age, secret)

    def block_actions(
        self, action_id: str, value: str, *, user_id: str, message: Message | None = None, age: int = 0
    ) -> SignedRequest:
        """A button press on one of the app's messages, as Slack sends it (payload=<json>)."""
        # Reference: https://api.slack.com/reference/interaction-payloads/block-actions
        key = f"A{next(self._requests_made)}"
        response_url = f"{self.url}/actions/{self.team_id}/{key}"
        container: dict[str, Any] = {"type": "message", "is_ephemeral": False}
        if message is not None:
            container.update(message_ts=message.ts, channel_id=message.channel)
        payload = {
            "type": "block_actions",
            "user": {"id": user_id, "username": self._name_of(user_id), "team_id": self.team_id},
            "api_app_id": "A0GANTRY",
            "token": "gIkuvaNzQIHg97ATvDxqgjtO",
            "container": container,
            "trigger_id": f"13345224609.738474920.{key}",
            "team": {"id": self.team_id, "domain": "gantry"},
            "channel": {"id": message.channel if message else "C0DEPLOYS", "name": "deploys"},
            "message": self._shape(message) if message else None,
            "response_url": response_url,
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": "gantry-actions",
                    "text": {"type": "plain_text", "text": action_id, "emoji": True},
                    "value": value,
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        return self._signed(urlencode({"payload": json.dumps(payload)}).encode(), response_url, age, "")

    def _signed(self, body: bytes, response_url: str, age: int, secret: str) -> SignedRequest:
        timestamp = int(time.time()) - age
        headers = {
            "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": sign(secret or self.signing_secret, body, timestamp),
        }
        return SignedRequest(body, headers, response_url)

    def _name_of(self, user_id: str) -> str:
        return next((u["name"] for u in self.users.values() if u["id"] == user_id), "someone")

    def answers(self, request: SignedRequest) -> list[dict[str, Any]]:
        """What the app posted to this request's response_url, oldest first."""
        return self.responses.get(request.response_url.rsplit("/", 1)[1], [])

    def _respond(self, request: Request, key: str) -> Response:
        # Reference: https://api.slack.com/interactivity/handling#message_responses
        try:
            body = request.json()
        except ValueError:
            return Response(400, "invalid_payload")
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return Response(400, "no_text")
        self.responses.setdefault(key, []).append(body)
        return Response(200, "ok")

    def rate_limit(self, method: str, *, retry_after: int = 1, times: int = 1) -> None:
        """The next `times` calls of `method` answer 429 with Retry-After."""
        self.rate_limits[method] = [retry_after, times]

    def top_level(self, channel: str = "") -> list[Message]:
        return [m for m in self.messages.values() if not m.thread_ts and (not channel or m.channel == channel)]

    def replies(self, ts: str) -> list[Message]:
        return [m for m in self.messages.values() if m.thread_ts == ts]

    # --- the API ---------------------------------------------------------------

    def _dispatch_method(self, method: str) -> Any:
        def handle(request: Request) -> Response:
            limit = self.rate_limits.get(method)
            if limit and limit[1] > 0:
                limit[1] -= 1
                return Response(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(limit[0])})
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return _error("invalid_auth" if request.headers.get("authorization") else "not_authed")
            args = _arguments(request)
            return getattr(self, "_" + method.replace(".", "_"))(args)

        return handle

    def _auth_test(self, args: dict[str, Any]) -> Response:
        return Response(
            200,
            {
                "ok": True,
                "url": "https://gantry.slack.com/",
                "team": "Gantry",
                "user": "gantry",
                "team_id": self.team_id,
                "user_id": "U0GANTRY",
                "bot_id": self.bot_id,
            },
        )

    def _channel_id(self, channel: str) -> str | None:
        name = channel.removeprefix("#")
        if name in self.channels:
            return name
        return next((cid for cid, cname in self.channels.items() if cname == name), None)

    def _check_content(self, args: dict[str, Any]) -> Response | None:
        text, blocks = args.get("text") or "", args.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
            args["blocks"] = blocks
        if not text and not blocks:
            return _error("no_text")
        if len(text) > TEXT_LIMIT:
            return _error("msg_too_long")
        if len(blocks) > BLOCKS_LIMIT:
            return _error("invalid_blocks")
        return None

    def _next_ts(self) -> str:
        with self._ts_lock:
            return f"{int(time.time())}.{next(self._clock):06d}"

    def _chat_postMessage(self, args: dict[str, Any]) -> Response:
        channel = self._channel_id(str(args.get("channel", "")))
        if channel is None:
            return _error("channel_not_found")
        if problem := self._check_content(args):
            return problem
        thread_ts = str(args.get("thread_ts") or "")
        if thread_ts and (channel, thread_ts) not in self.messages:
            return _error("thread_not_found")
        ts = self._next_ts()
        message = Message(channel, ts, args.get("text") or "", args.get("blocks") or [], thread_ts)
        message.history.append({"text": message.text, "blocks": message.blocks})
        self.messages[(channel, ts)] = message
        return Response(200, {"ok": True, "channel": channel, "ts": ts, "message": self._shape(message)})

    def _chat_update(self, args: dict[str, Any]) -> Response:
        channel = self._channel_id(str(args.get("channel", "")))
        if channel is None:
            return _error("channel_not_found")
        message = self.messages.get((channel, str(args.get("ts", ""))))
        if message is None:
            return _error("message_not_found")
        if problem := self._check_content(args):
            return problem
        message.text, message.blocks = args.get("text") or "", args.get("blocks") or []
        message.edits += 1
        message.history.append({"text": message.text, "blocks": message.blocks})
        answer = {"ok": True, "channel": channel, "ts": message.ts, "text": message.text}
        return Response(200, {**answer, "message": self._shape(message)})

    def _users_lookupByEmail(self, args: dict[str, Any]) -> Response:
        user = self.users.get(str(args.get("email", "")))
        return Response(200, {"ok": True, "user": user}) if user else _error("users_not_found")

    def _users_info(self, args: dict[str, Any]) -> Response:
        user = next((u for u in self.users.values() if u["id"] == args.get("user")), None)
        return Response(200, {"ok": True, "user": user}) if user else _error("user_not_found")

    def _conversations_info(self, args: dict[str, Any]) -> Response:
        channel = self._channel_id(str(args.get("channel", "")))
        if channel is None:
            return _error("channel_not_found")
        return Response(200, {"ok": True, "channel": {"id": channel, "name": self.channels[channel]}})

    def _shape(self, message: Message) -> dict[str, Any]:
        shape = {
            "type": "message",
            "subtype": "bot_message",
            "text": message.text,
            "ts": message.ts,
            "bot_id": self.bot_id,
            "blocks": message.blocks,
        }
        if message.thread_ts:
            shape["thread_ts"] = message.thread_ts
        return shape


def _error(code: str) -> Response:
    # Slack answers errors with HTTP 200 and ok: false.
    return Response(200, {"ok": False, "error": code})


def _arguments(request: Request) -> dict[str, Any]:
    """Slack takes arguments as JSON, as a form, or in the query string."""
    content_type = request.headers.get("content-type", "")
    if "json" in content_type and request.body:
        return dict(request.json())
    args: dict[str, Any] = dict(request.query)
    if request.body:
        args.update({k: v[-1] for k, v in parse_qs(request.body.decode(), keep_blank_values=True).items()})
    return args
