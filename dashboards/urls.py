"""The root URLconf (ROOT_URLCONF): every page, the API, the hooks and the operator endpoints. It lives in
the web package so the domain (deployer) never imports the web."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path

from dashboards import actions, catalog_page, delivery, history, host_keys, me, ops, sign_in, views
from dashboards.hooks import github, jenkins, slack

urlpatterns = [
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("metrics", ops.metrics, name="metrics"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("oidc/authenticate/", login_not_required(sign_in.SsoStart.as_view()), name="oidc_authentication_init"),
    path("oidc/callback/", login_not_required(sign_in.SsoCallback.as_view()), name="oidc_authentication_callback"),
    path("sso/github/", sign_in.github_start, name="github-sign-in"),
    path("sso/github/callback", sign_in.github_callback, name="github-sign-in-callback"),
    path("admin/", admin.site.urls),
    path("api/", include("dashboards.api.urls")),
    path("", views.services, name="services"),
    path("services/<slug:name>/", views.service_detail, name="service"),
    path("services/<slug:name>/refresh", actions.service_refresh_view, name="service-refresh"),
    path("services/<slug:name>/host-keys/trust", host_keys.host_key_trust_view, name="host-key-trust"),
    path("services/<slug:name>/<slug:environment>/deploy", actions.deploy_create, name="deploy-create"),
    path("services/<slug:name>/<slug:environment>/promote", actions.deploy_promote_view, name="deploy-promote"),
    path("deploys/<int:pk>/", views.deploy_detail, name="deploy"),
    path("deploys/<int:pk>/log", views.deploy_log, name="deploy-log"),
    path("deploys/<int:pk>/log.txt", views.deploy_log_text, name="deploy-log-text"),
    path("services/<slug:name>/<slug:environment>/plan", views.deploy_plan_view, name="deploy-plan"),
    path("services/<slug:name>/<slug:environment>/changes/<int:pk>", views.plan_changes, name="plan-changes"),
    path("services/<slug:name>/<slug:environment>/rollback", actions.deploy_rollback_view, name="deploy-rollback"),
    path("services/<slug:name>/<slug:environment>/lease/release", actions.lease_release_view, name="lease-release"),
    path("services/<slug:name>/<slug:environment>/lease/extend", actions.lease_extend_view, name="lease-extend"),
    path("services/<slug:name>/<slug:environment>/api-tests", actions.api_tests_run_view, name="api-tests-run"),
    path("api-tests/<int:pk>/", views.api_run_detail, name="api-run"),
    path("services/<slug:name>/<slug:environment>/lock", actions.environment_lock_view, name="environment-lock"),
    path("services/<slug:name>/<slug:environment>/unlock", actions.environment_unlock_view, name="environment-unlock"),
    path("deploys/<int:pk>/cancel", actions.deploy_cancel_view, name="deploy-cancel"),
    path("deploys/<int:pk>/approve", actions.deploy_approve_view, name="deploy-approve"),
    path("deploys/<int:pk>/reject", actions.deploy_reject_view, name="deploy-reject"),
    path("deploys/<int:pk>/decide", actions.deploy_decide_view, name="deploy-decide"),
    path("deploys/<int:pk>/mark-failed", actions.deploy_mark_failed_view, name="deploy-mark-failed"),
    path("me/", me.me_page, name="me"),
    path("catalog/", catalog_page.catalog_page, name="catalog"),
    path("me/tokens", me.token_create_view, name="token-create"),
    path("me/tokens/<str:key>/revoke", me.token_revoke_view, name="token-revoke"),
    path("history/", history.history_page, name="history"),
    path("history/export.csv", history.history_csv, name="history-csv"),
    path("delivery/", delivery.delivery, name="delivery"),
    path("status/", views.integration_status, name="status"),
    path("hooks/github", github.github_hook, name="hook-github"),
    path("hooks/jenkins", jenkins.jenkins_hook, name="hook-jenkins"),
    path("hooks/slack/commands", slack.slack_command, name="hook-slack-commands"),
    path("hooks/slack/actions", slack.slack_action, name="hook-slack-actions"),
]
