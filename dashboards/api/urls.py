"""/api/ routes: v1 of the API, its OpenAPI schema and the docs that read it (Redoc and Swagger UI, served from
this server: no CDN). DRF authenticates the API itself (token or session), so Django's login-required
middleware lets these through.

Every route ends in a slash. The spellings without one that earlier versions answered (rollback, lock,
unlock, approve, cancel) are still answered as they are, by the same view — a redirect would make clients
that do not follow one with the same method fail — and the schema lists only the slashed route
(`slashed_only`)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.urls import URLPattern, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from dashboards.api import actions, views

_ENV = "v1/services/<slug:name>/<slug:environment>/"
_DEPLOY = "v1/deploys/<int:pk>/"


def route(spelling: str, view: Any, name: str, *, old: bool = False) -> list[URLPattern]:
    """The route, open to DRF's authentication; with `old`, also its earlier spelling without the slash."""
    answered = login_not_required(view.as_view())
    routes = [path(spelling, answered, name=name)]
    if old:
        routes.append(path(spelling.rstrip("/"), answered))
    return routes


def slashed_only(endpoints: list[tuple[str, str, str, Any]], **kwargs: Any) -> list[tuple[str, str, str, Any]]:
    """The schema's preprocessing hook: the old spellings without a slash are not documented."""
    return [endpoint for endpoint in endpoints if endpoint[0].endswith("/")]


def readable(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """The schema's postprocessing hook, for the docs a person reads: each operation grouped by what it acts
    on (services, environments, deploys, history, me) and titled in a few words."""
    for route, item in result.get("paths", {}).items():
        parts = route.removeprefix("/api/v1/").strip("/").split("/")
        on_environment = parts[0] == "services" and len(parts) >= 3 and parts[2] not in _SERVICE_PARTS
        for method, operation in item.items():
            if isinstance(operation, dict):
                operation["tags"] = ["environments" if on_environment else parts[0]]
                operation["summary"] = _TITLES.get((method.upper(), parts[-1] if len(parts) > 1 else ""), "")
                operation["summary"] = operation["summary"] or _TITLES.get((method.upper(), route), route)
    return result


_SERVICE_PARTS = {"branches", "builds", "tags", "refresh"}
# (method, the route's last part) -> a title; the routes whose last part is a name or an id by route.
_TITLES = {
    ("GET", "/api/v1/services/"): "List services",
    ("GET", "/api/v1/services/{name}/"): "Get a service",
    ("GET", "/api/v1/services/{name}/{environment}/"): "Get an environment",
    ("GET", "/api/v1/deploys/"): "List deploys",
    ("POST", "/api/v1/deploys/"): "Request a deploy",
    ("GET", "/api/v1/deploys/{id}/"): "Get a deploy",
    ("GET", "/api/v1/history/"): "Search the audit history",
    ("GET", "/api/v1/me/"): "Who am I",
    ("GET", "branches"): "List a service's branches",
    ("GET", "builds"): "List a service's builds",
    ("GET", "tags"): "List a service's tags",
    ("POST", "refresh"): "Sync a service now",
    ("GET", "plan"): "Plan a deploy",
    ("POST", "rollback"): "Roll back",
    ("POST", "promote"): "Promote",
    ("POST", "lock"): "Lock",
    ("POST", "unlock"): "Unlock",
    ("POST", "api-tests"): "Run the API tests",
    ("GET", "log"): "Read a deploy's log",
    ("POST", "approve"): "Approve a deploy",
    ("POST", "reject"): "Reject a deploy",
    ("POST", "cancel"): "Cancel a deploy",
    ("POST", "decide"): "Answer a paused rollout",
    ("POST", "mark-failed"): "Mark a deploy failed",
}


urlpatterns = [
    path("schema/", login_not_required(SpectacularAPIView.as_view()), name="api-schema"),
    path("docs/", login_not_required(SpectacularRedocView.as_view(url_name="api-schema")), name="api-docs"),
    path(
        "docs/swagger/",
        login_not_required(SpectacularSwaggerView.as_view(url_name="api-schema")),
        name="api-docs-swagger",
    ),
    *route("v1/services/", views.ServiceList, "api-services"),
    *route("v1/services/<slug:name>/", views.ServiceDetail, "api-service"),
    *route("v1/services/<slug:name>/branches/", views.BranchList, "api-branches"),
    *route("v1/services/<slug:name>/builds/", views.BuildList, "api-builds"),
    *route("v1/services/<slug:name>/tags/", views.TagList, "api-tags"),
    *route("v1/services/<slug:name>/refresh/", actions.ServiceRefresh, "api-refresh"),
    *route(_ENV, views.EnvironmentDetail, "api-environment"),
    *route(_ENV + "plan/", views.PlanView, "api-plan"),
    *route(_ENV + "rollback/", actions.EnvironmentRollback, "api-rollback", old=True),
    *route(_ENV + "promote/", actions.EnvironmentPromote, "api-promote"),
    *route(_ENV + "lock/", actions.EnvironmentLock, "api-lock", old=True),
    *route(_ENV + "unlock/", actions.EnvironmentUnlock, "api-unlock", old=True),
    *route(_ENV + "api-tests/", actions.EnvironmentApiTests, "api-tests-run"),
    *route("v1/deploys/", views.DeployList, "api-deploys"),
    *route(_DEPLOY, views.DeployDetail, "api-deploy"),
    *route(_DEPLOY + "log/", views.DeployLogView, "api-deploy-log"),
    *route(_DEPLOY + "approve/", actions.DeployApprove, "api-approve", old=True),
    *route(_DEPLOY + "reject/", actions.DeployReject, "api-reject"),
    *route(_DEPLOY + "cancel/", actions.DeployCancel, "api-cancel", old=True),
    *route(_DEPLOY + "decide/", actions.DeployDecide, "api-decide"),
    *route(_DEPLOY + "mark-failed/", actions.DeployMarkFailed, "api-mark-failed"),
    *route("v1/history/", views.HistoryList, "api-history"),
    *route("v1/me/", views.MeView, "api-me"),
]
