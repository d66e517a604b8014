from __future__ import annotations

from django.urls import path

from dashboards import views

urlpatterns = [
    path("", views.services, name="services"),
    path("services/<slug:name>/", views.service_detail, name="service"),
    path("services/<slug:name>/refresh", views.service_refresh, name="service-refresh"),
    path("services/<slug:name>/<slug:environment>/deploy", views.deploy_create, name="deploy-create"),
    path("deploys/<int:pk>/", views.deploy_detail, name="deploy"),
    path("deploys/<int:pk>/log", views.deploy_log, name="deploy-log"),
    path("history/", views.history, name="history"),
]
