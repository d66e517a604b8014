"""Webhook endpoints: verify, record, answer fast. The work happens in workers.

GitHub signs each delivery with HMAC-SHA256 over the raw body
(X-Hub-Signature-256); Jenkins' notifications carry a shared token.
"""

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

from deployer import queue
from deployer.models import Service
from deployer.webhooks import GITHUB_EVENTS, delivery_record, github_service

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
    if github_service(payload) is None:
        return _answer(202, ignored="no service in the catalog uses this repository (github: owner/name)")
    if delivery_record(source="github", delivery_id=delivery_id, event=event, payload=payload) is None:
        return _answer(200, ignored=f"delivery {delivery_id} was received before")
    return _answer(202, queued=delivery_id)


@csrf_exempt
@login_not_required
@require_POST
def jenkins_hook(request: HttpRequest) -> HttpResponse:
    """A job finished (or started): refresh the builds of the services it builds.

    Accepts the Notification plugin's JSON ({"name": ..., "url": "job/app/..."}) or a
    form field `job`; the token comes in the X-Gantry-Token header. ?token= still works
    for senders that cannot set a header, but is discouraged: URLs end up in access logs.
    """
    expected = settings.JENKINS_WEBHOOK_TOKEN
    given = request.headers.get("X-Gantry-Token", "")
    if not given and "token" in request.GET:
        logger.warning("the Jenkins hook token came in the URL (?token=); send it in X-Gantry-Token instead")
        given = request.GET.get("token", "")
    if not expected:
        return _answer(403, error="Jenkins notifications are off: set JENKINS_WEBHOOK_TOKEN")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return _answer(403, error="bad or missing token (X-Gantry-Token header or ?token=)")
    job = _jenkins_job(request)
    if not job:
        return _answer(400, error='send JSON {"name": "<job>"} (Notification plugin) or a form field job=<job>')
    services = [s for s in Service.objects.exclude(jenkins_job="") if _builds(s.jenkins_job, job)]
    if not services:
        return _answer(404, error=f"no service in the catalog has jenkins_job {job!r}")
    try:
        for service in services:
            queue.enqueue(queue.SYNC_BUILDS, service.pk)
    except queue.QueueUnavailable as exc:
        return _answer(503, error=f"{exc}; the scheduled build sync will catch up")
    return _answer(202, refreshing=[s.name for s in services])


def _jenkins_job(request: HttpRequest) -> str:
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body)
        except ValueError:
            return ""
        if isinstance(data, dict):
            url = str(data.get("url", ""))
            parts = [p for p in url.strip("/").split("/") if p]
            # job/folder/job/name/job/branch/ → folder/name/branch
            from_url = "/".join(parts[1::2]) if parts[:1] == ["job"] else ""
            return from_url or str(data.get("name", ""))
        return ""
    return request.POST.get("job", "")


def _builds(configured: str, notified: str) -> bool:
    """A service's job is the notified one, or its parent (a multibranch pipeline's branch job)."""
    configured = configured.strip("/")
    return notified == configured or notified.startswith(configured + "/")
