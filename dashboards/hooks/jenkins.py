"""Jenkins' notification: a shared token in a header; the builds of the services the job builds are refreshed."""

from __future__ import annotations

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

logger = logging.getLogger(__name__)


def _answer(status: int, **body: Any) -> JsonResponse:
    return JsonResponse(body, status=status)


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
