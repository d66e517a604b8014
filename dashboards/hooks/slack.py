"""Slack's requests to Gantry: the /gantry slash command and button presses.

Each is checked against the signing secret over the raw body (and refused
with 401 when the signature is bad or the request older than five minutes),
then answered within Slack's 3 s: a usage mistake at once, anything else by
queueing it (deployer.chatops does it in a worker and answers through the
response_url).
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from deployer import queue
from deployer.chatops import ACTIONS, ChatRequest, CommandError, command_parse, signature_problem


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _ephemeral(text: str) -> JsonResponse:
    # Reference: https://api.slack.com/interactivity/slash-commands#responding_immediate_response
    return JsonResponse({"response_type": "ephemeral", "text": text})


def _refusal(request: HttpRequest) -> JsonResponse | None:
    secret = settings.SLACK_SIGNING_SECRET
    if not secret:
        return _error(403, "Slack commands are off: set SLACK_SIGNING_SECRET to the Slack app's signing secret")
    problem = signature_problem(
        request.body,
        request.headers.get("X-Slack-Request-Timestamp", ""),
        request.headers.get("X-Slack-Signature", ""),
        secret=secret,
        now=time.time(),
    )
    return _error(401, problem) if problem else None


def _response_url_problem(url: str) -> str:
    if not url.startswith(settings.SLACK_RESPONSE_URL_PREFIX):
        return f"response_url must start with {settings.SLACK_RESPONSE_URL_PREFIX} (SLACK_RESPONSE_URL_PREFIX)"
    return ""


def _queue(chat: ChatRequest) -> JsonResponse | None:
    try:
        queue.enqueue(queue.CHATOPS, chat.as_dict())
    except queue.QueueUnavailable:
        return _ephemeral(
            ":warning: Gantry's task queue is unreachable, so nothing was done. "
            f"Try again in a minute, or use <{settings.GANTRY_BASE_URL}/|Gantry> in the browser."
        )
    return None


@csrf_exempt
@login_not_required
@require_POST
def slack_command(request: HttpRequest) -> HttpResponse:
    """`/gantry …` (Slack app → Slash Commands → Request URL: <base>/hooks/slack/commands)."""
    # Reference: https://api.slack.com/interactivity/slash-commands
    if refusal := _refusal(request):
        return refusal
    if request.POST.get("ssl_check"):
        return HttpResponse(status=200)
    user_id, response_url = request.POST.get("user_id", ""), request.POST.get("response_url", "")
    if not user_id or not response_url:
        return _error(400, "a slash command carries user_id and response_url; this request has not")
    if problem := _response_url_problem(response_url):
        return _error(400, problem)
    try:
        command = command_parse(request.POST.get("text", ""))
    except CommandError as exc:
        return _ephemeral(str(exc))
    chat = ChatRequest(slack_user=user_id, response_url=response_url, command=command.as_dict())
    return _queue(chat) or _ephemeral(f":hourglass_flowing_sand: On it: {command.describe()}…")


@csrf_exempt
@login_not_required
@require_POST
def slack_action(request: HttpRequest) -> HttpResponse:
    """A button on a Gantry message (Slack app → Interactivity → Request URL: <base>/hooks/slack/actions)."""
    # Reference: https://api.slack.com/reference/interaction-payloads/block-actions
    if refusal := _refusal(request):
        return refusal
    try:
        payload: Any = json.loads(request.POST.get("payload", ""))
    except ValueError:
        return _error(400, "an interaction carries a JSON `payload` form field; this one has none or bad JSON")
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return HttpResponse(status=200)  # shortcuts, modals...: Gantry offers none
    actions = [a for a in payload.get("actions") or [] if isinstance(a, dict) and a.get("action_id") in ACTIONS]
    user_id = str((payload.get("user") or {}).get("id", ""))
    response_url = str(payload.get("response_url", ""))
    if not actions:
        return HttpResponse(status=200)  # not one of Gantry's buttons
    if not user_id or not response_url:
        return _error(400, "a block_actions payload carries user.id and response_url; this one has not")
    if problem := _response_url_problem(response_url):
        return _error(400, problem)
    action = actions[0]
    chat = ChatRequest(
        slack_user=user_id, response_url=response_url, action_id=action["action_id"], value=str(action.get("value"))
    )
    if _queue(chat):
        # Slack ignores the body of an answer to a button press; a failure status makes it show a warning.
        return _error(503, "Gantry's task queue is unreachable; nothing was done")
    return HttpResponse(status=200)
