"""The catalog page: where the catalog comes from, the commit that is live, and why a newer one was refused
(deployer/ops/catalog_follow.py keeps it)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboards.signed_in import SignedInRequest
from deployer.models import CatalogState


@require_GET
def catalog_page(request: SignedInRequest) -> HttpResponse:
    state = CatalogState.objects.filter(pk=1).first()
    context = {
        "repo": settings.CATALOG_REPO,
        "branch": settings.CATALOG_BRANCH,
        "path": settings.CATALOG_PATH,
        "every": settings.CATALOG_SYNC_SECONDS,
        "state": state,
        "refused": bool(state and state.problems and state.seen_sha != state.applied_sha),
    }
    return render(request, "dashboards/catalog.html", context)
