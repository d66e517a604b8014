"""Endpoints for whoever runs Gantry: /healthz, /readyz and /metrics.

/healthz and /readyz are unauthenticated and cheap (load balancers and
orchestrators call them often); /metrics wants GANTRY_METRICS_TOKEN as a
bearer token, or a signed-in Gantry admin (a superuser; Django staff are not enough).
/readyz says only which part is not ready; the error goes to the log.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from deployer.ops.prometheus import GantryCollector
from deployer.ops.readiness import broker_problem, database_problem

_registry = CollectorRegistry(auto_describe=False)
_registry.register(GantryCollector())


@login_not_required
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """The process is up and answering (nothing else is checked)."""
    return JsonResponse({"status": "ok"})


@login_not_required
@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    """The database and the broker are reachable: 200, or 503 naming what is not."""
    checks = {"database": database_problem(), "broker": broker_problem()}
    body = {name: problem or "ok" for name, problem in checks.items()}
    return JsonResponse(body, status=503 if any(checks.values()) else 200)


@login_not_required
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    allowed = (token and hmac.compare_digest(given.encode(), token.encode())) or (
        request.user.is_authenticated and request.user.is_superuser
    )
    if not allowed:
        why = "send Authorization: Bearer <GANTRY_METRICS_TOKEN>" if token else "set GANTRY_METRICS_TOKEN to scrape"
        return JsonResponse({"error": f"metrics need a token: {why} (or sign in as an admin)"}, status=401)
    return HttpResponse(generate_latest(_registry), content_type=CONTENT_TYPE_LATEST)
