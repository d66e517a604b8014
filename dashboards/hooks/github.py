"""GitHub's webhook: verify the HMAC-SHA256 signature over the raw body (X-Hub-Signature-256), record the
delivery, answer fast; a worker applies it."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from deployer.sources.webhooks import GITHUB_EVENTS, delivery_record, github_service, is_catalog_repository

logger = logging.getLogger(__name__)


def _answer(status: int, **body: Any) -> JsonResponse:
    return JsonResponse(body, status=status)


def _signature_ok(request: HttpRequest, secret: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(request.headers.get("X-Hub-Signature-256", ""), expected)


@csrf_exempt
@login_not_required
@require_POST
def github_hook(request: HttpRequest) -> HttpResponse:
    # Reference: https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
    secret = settings.GITHUB_WEBHOOK_SECRET
    if not secret:
        return _answer(403, error="GitHub webhooks are off: set GITHUB_WEBHOOK_SECRET (and the same secret on GitHub)")
    if not _signature_ok(request, secret):
        return _answer(403, error="bad or missing X-Hub-Signature-256: check the webhook secret on GitHub")
    event = request.headers.get("X-GitHub-Event", "")
    if event == "ping":
        return _answer(200, ok="pong")
    if event not in GITHUB_EVENTS:
        return HttpResponse(status=204)
    delivery_id = request.headers.get("X-GitHub-Delivery", "")
    try:
        payload = json.loads(request.body)
    except ValueError:
        return _answer(400, error="the body is not JSON: set the webhook's content type to application/json")
    if not delivery_id or not isinstance(payload, dict):
        return _answer(400, error="missing X-GitHub-Delivery header or JSON object body")
    if github_service(payload) is None and not (event == "push" and is_catalog_repository(payload)):
        return _answer(202, ignored="no service in the catalog uses this repository (github: owner/name)")
    if delivery_record(source="github", delivery_id=delivery_id, event=event, payload=payload) is None:
        return _answer(200, ignored=f"delivery {delivery_id} was received before")
    return _answer(202, queued=delivery_id)
