"""/api/v1/ routes and the OpenAPI schema. DRF authenticates these itself (token or session),
so Django's login-required middleware lets them through."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from dashboards.api import views as api

urlpatterns = [
    path("schema/", login_not_required(SpectacularAPIView.as_view()), name="api-schema"),
    path("v1/services/", login_not_required(api.ServiceList.as_view()), name="api-services"),
    path("v1/services/<slug:name>/branches/", login_not_required(api.BranchList.as_view()), name="api-branches"),
    path("v1/services/<slug:name>/builds/", login_not_required(api.BuildList.as_view()), name="api-builds"),
    path(
        "v1/services/<slug:name>/<slug:environment>/rollback",
        login_not_required(api.EnvironmentRollback.as_view()),
        name="api-rollback",
    ),
    path(
        "v1/services/<slug:name>/<slug:environment>/lock",
        login_not_required(api.EnvironmentLock.as_view()),
        name="api-lock",
    ),
    path(
        "v1/services/<slug:name>/<slug:environment>/unlock",
        login_not_required(api.EnvironmentUnlock.as_view()),
        name="api-unlock",
    ),
    path("v1/deploys/", login_not_required(api.DeployList.as_view()), name="api-deploys"),
    path("v1/deploys/<int:pk>/", login_not_required(api.DeployDetail.as_view()), name="api-deploy"),
    path("v1/deploys/<int:pk>/approve", login_not_required(api.DeployApprove.as_view()), name="api-approve"),
    path("v1/deploys/<int:pk>/cancel", login_not_required(api.DeployCancel.as_view()), name="api-cancel"),
]
