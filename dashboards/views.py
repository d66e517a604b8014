"""The pages. Views validate, call one deployer function, and render; they never
talk to a host, a repository or an outside API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import user_passes_test
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from dashboards.forms import (
    DeployForm,
    LockForm,
    LogCursorForm,
    MatrixFilterForm,
    PlanForm,
    ReasonForm,
    RollbackForm,
)
from dashboards.matrix import matrix_rows
from deployer import queue, selectors
from deployer.apitests.runs import api_tests_request, recent_runs
from deployer.choices import Decision, DeployStatus
from deployer.deploys.plan import deploy_plan
from deployer.deploys.request import (
    DeployOptions,
    deploy_approve,
    deploy_cancel,
    deploy_decide,
    deploy_mark_failed,
    deploy_promote,
    deploy_reject,
    deploy_request,
    deploy_rollback,
    queue_waiting_message,
    rollback_candidates,
)
from deployer.environments.access import access_for
from deployer.environments.leases import LeaseHeld, lease_enqueue, lease_extend, lease_release, lease_summary
from deployer.environments.locks import environment_lock, environment_unlock, lock_summary
from deployer.errors import DeployConflict, DeployRefused, QueueDown, Throttled
from deployer.integrations import github, jenkins
from deployer.models import ApiTestRun, Deploy, Environment, IntegrationStatus, Service, WebhookDelivery
from deployer.ops import pagecache
from deployer.sources import integration_health
from deployer.sources.freshness import service_refresh


@require_GET
def services(request: HttpRequest) -> HttpResponse:
    filters = MatrixFilterForm(request.GET)
    team, query = (filters.cleaned_data["team"], filters.cleaned_data["q"]) if filters.is_valid() else ("", "")
    key = pagecache.matrix_key(team, query)
    cached = cache.get(key) if pagecache.enabled() else None
    if cached is None:
        matrix = selectors.services_matrix(team=team, query=query)
        cached = {"columns": matrix.columns, "teams": matrix.teams, "rows": matrix_rows(matrix)}
        if pagecache.enabled():
            cache.set(key, cached, timeout=settings.MATRIX_CACHE_SECONDS)
    return render(request, "dashboards/services.html", {**cached, "team": team, "q": query})


def _service_page(
    request: HttpRequest,
    service: Service,
    *,
    error: str = "",
    status: int = 200,
    running: Deploy | None = None,
    lease_choice: tuple[Environment, dict[str, str]] | None = None,
) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:100]
    access = access_for(request.user)
    states = [
        replace(
            state,
            deploy_url=reverse("deploy-create", args=[service.name, state.environment.name]),
            plan_url=reverse("deploy-plan", args=[service.name, state.environment.name]),
            can_deploy=access.can_deploy(state.environment),
            refusal="" if access.can_deploy(state.environment) else access.why_not_deploy(state.environment),
            lock=lock_summary(state.environment) if state.environment.is_locked else "",
            lease=lease_summary(state.environment) if state.environment.is_leased else "",
            lease_mine=state.environment.is_leased and state.environment.leased_by_id == request.user.pk,
            rollback_to=rollback_candidates(state.environment) if access.can_deploy(state.environment) else [],
            api_runs=recent_runs(state.environment) if service.api_tests else [],
        )
        for state in selectors.service_environments(service)
    ]
    context = {
        "service": service,
        "states": states,
        "rows": selectors.service_branches(service, states, query=query),
        "commit_base": github.commit_url(service.github_repo, "") if service.github_repo else "",
        "q": query,
        "freshness": selectors.sync_states(service),
        "uses_jenkins": bool(service.jenkins_job and jenkins.enabled()),
        "recent": selectors.deploy_history().filter(environment__service=service)[:10],
        "error": error,
        "running": running,
        "is_admin": access.is_admin,
        "can_refresh": any(state.can_deploy for state in states),
        "lock_form": LockForm(),
        "lease_choice": lease_choice,
    }
    return render(request, "dashboards/service.html", context, status=status)


@require_GET
def service_detail(request: HttpRequest, name: str) -> HttpResponse:
    return _service_page(request, get_object_or_404(Service.objects.select_related("team"), name=name))


@require_POST
def service_refresh_view(request: HttpRequest, name: str) -> HttpResponse:
    service = get_object_or_404(Service.objects.select_related("team"), name=name)
    try:
        service_refresh(service=service, user=request.user)
    except Throttled as exc:
        messages.info(request, _sentence(exc))
    except QueueDown as exc:
        messages.error(request, _sentence(exc))
    except DeployRefused as exc:
        return _service_page(request, service, error=str(exc), status=exc.status_code)
    else:
        messages.info(request, f"Refreshing {service.name}; reload in a few seconds.")
    return redirect("service", name=service.name)


def _sentence(exc: Exception) -> str:
    """A refusal's words as a message line: capitalised, with a full stop."""
    text = str(exc)
    return f"{text[:1].upper()}{text[1:]}."


def _environment(name: str, environment: str) -> Environment:
    return get_object_or_404(
        Environment.objects.select_related("service__team", "locked_by", "leased_by"),
        service__name=name,
        name=environment,
    )


def _refused(request: HttpRequest, env: Environment, exc: DeployRefused) -> HttpResponse:
    running = exc.running if isinstance(exc, DeployConflict) else None
    return _service_page(request, env.service, error=str(exc), status=exc.status_code, running=running)


@require_POST
def deploy_create(request: HttpRequest, name: str, environment: str) -> HttpResponse:
    env = _environment(name, environment)
    form = DeployForm(request.POST)
    if not form.is_valid():
        return _service_page(request, env.service, error=_form_error(form), status=400)
    if request.POST.get("lease") == "queue":
        try:
            lease_enqueue(
                env, user=request.user, ref=form.cleaned_data["ref"], checklist=_options(request, env, form).checklist
            )
        except DeployRefused as exc:
            return _refused(request, env, exc)
        messages.info(request, f"Queued {form.cleaned_data['ref']} behind the lease on {env}: it starts when it ends.")
        return redirect("service", name=env.service.name)
    try:
        deploy = deploy_request(
            environment=env, ref=form.cleaned_data["ref"], user=request.user, options=_options(request, env, form)
        )
    except LeaseHeld as exc:
        return _service_page(
            request, env.service, error=str(exc), status=exc.status_code, lease_choice=(env, form.cleaned_data)
        )
    except DeployRefused as exc:
        return _refused(request, env, exc)
    return _to_deploy(request, deploy)


@require_POST
def api_tests_run_view(request: HttpRequest, name: str, environment: str) -> HttpResponse:
    """Run the environment's API test suites now (they run in a worker; results appear in the strip)."""
    env = _environment(name, environment)
    try:
        api_tests_request(environment=env, user=request.user)
    except QueueDown as exc:
        messages.error(request, _sentence(exc))
    except DeployRefused as exc:
        return _refused(request, env, exc)
    else:
        messages.info(request, f"Running the API tests against {env}; the results appear in its strip in a moment.")
    return redirect("service", name=env.service.name)


@require_GET
def api_run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(ApiTestRun.objects.select_related("environment__service"), pk=pk)
    return render(request, "dashboards/api_run.html", {"run": run, "runs": [run]})


@require_POST
def lease_release_view(request: HttpRequest, name: str, environment: str) -> HttpResponse:
    env = _environment(name, environment)
    try:
        lease_release(env, user=request.user)
    except DeployRefused as exc:
        return _refused(request, env, exc)
    queue.enqueue_after_commit(queue.ADVANCE_LEASES)
    messages.info(request, f"Released the lease on {env}.")
    return redirect("service", name=env.service.name)


@require_POST
def lease_extend_view(request: HttpRequest, name: str, environment: str) -> HttpResponse:
    env = _environment(name, environment)
    try:
        lease_extend(env, user=request.user)
    except DeployRefused as exc:
        return _refused(request, env, exc)
    messages.info(request, f"Extended your lease on {env}.")
    return redirect("service", name=env.service.name)


def _options(request: HttpRequest, env: Environment, form: DeployForm | None = None) -> DeployOptions:
    """The checklist ticks and the lock override sit in the environment's card, named after it."""
    return DeployOptions(
        checklist=tuple(request.POST.getlist(f"checklist-{env.name}")),
        override_lock=request.POST.get(f"override-{env.name}") == "yes",
        emergency_reason=form.cleaned_data["emergency_reason"] if form else "",
        expected_sha=form.cleaned_data["expected_sha"] if form else "",
        take_over_lease=request.POST.get("lease") == "take_over",
    )


@require_GET
def deploy_plan_view(request: HttpRequest, name: str, environment: str) -> HttpResponse:
    """What a deploy of `?ref=` will do, with the button that starts it."""
    env = _environment(name, environment)
    form = PlanForm(request.GET)
    if not form.is_valid():
        return _service_page(request, env.service, error=_form_error(form), status=400)
    try:
        plan = deploy_plan(environment=env, ref=form.cleaned_data["ref"], user=request.user)
    except DeployRefused as exc:
        return _refused(request, env, exc)
    context = {"plan": plan, "service": env.service, "is_admin": access_for(request.user).is_admin}
    return render(request, "dashboards/plan.html", context)


@require_POST
def deploy_rollback_view(request: HttpRequest, name: str, environment: str) -> HttpResponse:
    env = _environment(name, environment)
    form = RollbackForm(request.POST)
    if not form.is_valid():
        return _service_page(request, env.service, error=_form_error(form), status=400)
    target = None
    if form.cleaned_data["to"]:
        target = Deploy.objects.filter(pk=form.cleaned_data["to"], environment=env).first()
        if target is None:
            error = f"deploy #{form.cleaned_data['to']} is not a deploy of {env}; pick a release from the list"
            return _service_page(request, env.service, error=error, status=400)
    try:
        deploy = deploy_rollback(environment=env, user=request.user, to=target)
    except DeployRefused as exc:
        return _refused(request, env, exc)
    return _to_deploy(request, deploy)


@require_POST
def deploy_promote_view(request: HttpRequest, name: str, environment: str) -> HttpResponse:
    env = _environment(name, environment)
    try:
        deploy = deploy_promote(environment=env, user=request.user, options=_options(request, env))
    except DeployRefused as exc:
        return _refused(request, env, exc)
    return _to_deploy(request, deploy)


def _to_deploy(request: HttpRequest, deploy: Deploy) -> HttpResponse:
    """The deploy's page, saying so at the top when the deploy could not be handed to the task queue."""
    if deploy.waits_for_queue:
        messages.error(request, _sentence(queue_waiting_message(deploy)))
    return redirect("deploy", pk=deploy.pk)


def _form_error(form: DeployForm) -> str:
    return "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items())


def _deploy(pk: int) -> Deploy:
    return get_object_or_404(
        Deploy.objects.select_related(
            "environment__service__team",
            "environment__locked_by",
            "environment__leased_by",
            "requested_by",
            "approved_by",
        ),
        pk=pk,
    )


@require_GET
def deploy_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _deploy_page(request, _deploy(pk))


def _deploy_page(request: HttpRequest, deploy: Deploy, *, error: str = "", status: int = 200) -> HttpResponse:
    lines = selectors.deploy_log_after(deploy, 0)
    context = {
        "deploy": deploy,
        "hosts": deploy.hosts.all(),
        "lines": lines,
        "after": lines[-1].pk if lines else 0,
        **_rights(request, deploy),
        "slack_messages": deploy.slack_messages.all(),
        "api_runs": sorted(deploy.api_test_runs.prefetch_related("steps"), key=lambda run: run.ok),
        "commits": deploy.commits.all(),
        "error": error,
    }
    return render(request, "dashboards/deploy.html", context, status=status)


@require_GET
def deploy_log(request: HttpRequest, pk: int) -> HttpResponse:
    """The log lines after `?after=<id>`, the deploy's summary, and (while it
    runs) the next poller: htmx swaps these in place of the old poller."""
    cursor = LogCursorForm(request.GET)
    if not cursor.is_valid():
        return HttpResponseBadRequest("after must be the id of the last log line shown (a whole number >= 0)")
    deploy = _deploy(pk)
    after = cursor.cleaned_data["after"] or 0
    lines = selectors.deploy_log_after(deploy, after)
    context = {
        "deploy": deploy,
        "hosts": deploy.hosts.all(),
        "lines": lines,
        "after": lines[-1].pk if lines else after,
        **_rights(request, deploy),
    }
    return render(request, "dashboards/_log_update.html", context)


def _rights(request: HttpRequest, deploy: Deploy) -> dict[str, bool]:
    """What the deploy's summary offers this person (the log poll re-renders it several times a second)."""
    awaiting = deploy.status == DeployStatus.AWAITING_APPROVAL
    paused = deploy.paused_at is not None and deploy.status == DeployStatus.RUNNING
    return {
        "can_approve": awaiting and access_for(request.user).can_approve(deploy),
        "can_decide": paused and access_for(request.user).can_deploy(deploy.environment),
        "is_admin": bool(getattr(request.user, "is_superuser", False)),
    }


@require_POST
def deploy_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    deploy = _deploy(pk)
    try:
        deploy_cancel(deploy=deploy, user=request.user)
    except DeployRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, f"Cancel requested for deploy #{deploy.pk}.")
    return redirect("deploy", pk=deploy.pk)


def _deploy_action(request: HttpRequest, deploy: Deploy, action: Callable[[], object], done: str) -> HttpResponse:
    """Run a person's action on a deploy: its page again with the refusal, or a redirect saying it is done."""
    try:
        action()
    except DeployRefused as exc:
        return _deploy_page(request, deploy, error=str(exc), status=exc.status_code)
    messages.info(request, done)
    return _to_deploy(request, deploy)


def _reason(request: HttpRequest) -> str:
    form = ReasonForm(request.POST)
    return form.cleaned_data["reason"] if form.is_valid() else ""


@require_POST
def deploy_approve_view(request: HttpRequest, pk: int) -> HttpResponse:
    deploy = _deploy(pk)
    return _deploy_action(
        request,
        deploy,
        lambda: deploy_approve(deploy=deploy, user=request.user),
        f"Approved deploy #{deploy.pk}; it is queued.",
    )


@require_POST
def deploy_reject_view(request: HttpRequest, pk: int) -> HttpResponse:
    deploy = _deploy(pk)
    reason = _reason(request)
    return _deploy_action(
        request,
        deploy,
        lambda: deploy_reject(deploy=deploy, user=request.user, reason=reason),
        f"Rejected deploy #{deploy.pk}.",
    )


@require_POST
def deploy_decide_view(request: HttpRequest, pk: int) -> HttpResponse:
    deploy = _deploy(pk)
    choice = request.POST.get("choice", "")
    if choice not in Decision.values:
        return _deploy_page(request, deploy, error="choose retry, skip or abort", status=400)
    return _deploy_action(
        request,
        deploy,
        lambda: deploy_decide(deploy=deploy, user=request.user, choice=Decision(choice)),
        f"Deploy #{deploy.pk}: {Decision(choice).label}.",
    )


@require_POST
def deploy_mark_failed_view(request: HttpRequest, pk: int) -> HttpResponse:
    deploy = _deploy(pk)
    reason = _reason(request)
    return _deploy_action(
        request,
        deploy,
        lambda: deploy_mark_failed(deploy=deploy, user=request.user, reason=reason),
        f"Marked deploy #{deploy.pk} failed; {deploy.environment} is free.",
    )


@require_POST
def environment_lock_view(request: HttpRequest, name: str, environment: str) -> HttpResponse:
    env = _environment(name, environment)
    form = LockForm(request.POST)
    if not form.is_valid():
        return _service_page(request, env.service, error=_form_error(form), status=400)
    hours = form.cleaned_data["hours"]
    expires_at = timezone.now() + timedelta(hours=hours) if hours else None
    try:
        environment_lock(env, user=request.user, reason=form.cleaned_data["reason"], expires_at=expires_at)
    except DeployRefused as exc:
        return _refused(request, env, exc)
    messages.info(request, f"Locked {env}.")
    return redirect("service", name=env.service.name)


@require_POST
def environment_unlock_view(request: HttpRequest, name: str, environment: str) -> HttpResponse:
    env = _environment(name, environment)
    try:
        environment_unlock(env, user=request.user)
    except DeployRefused as exc:
        return _refused(request, env, exc)
    messages.info(request, f"Unlocked {env}.")
    return redirect("service", name=env.service.name)


@require_GET
@user_passes_test(lambda user: user.is_superuser)
def integration_status(request: HttpRequest) -> HttpResponse:
    """Each integration's health: last sync, errors, GitHub's remaining rate-limit budget, webhook deliveries.

    For Gantry admins (superusers) only, like /metrics: it shows what outside systems answered.
    """
    statuses = {s.name: s for s in IntegrationStatus.objects.all()}
    context = {
        "integrations": [
            ("GitHub", github.enabled(), statuses.get(integration_health.GITHUB)),
            ("Jenkins", jenkins.enabled(), statuses.get(integration_health.JENKINS)),
        ],
        "stale": selectors.stale_sync_states()[:200],
        "deliveries": WebhookDelivery.objects.order_by("-received_at")[:20],
    }
    return render(request, "dashboards/status.html", context)
