"""The pages. Views validate, call one deployer function, and render; they never
talk to a host, a repository or an outside API."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import user_passes_test
from django.core.cache import cache
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from dashboards.forms import (
    LockForm,
    LogCursorForm,
    MatrixFilterForm,
    PlanForm,
)
from dashboards.matrix import cache_enabled, cache_key, matrix_rows, services_paging
from dashboards.signed_in import SignedInRequest
from deployer import selectors
from deployer.apitests.runs import recent_runs
from deployer.catalog.analysis_spec import AnalysisSpec
from deployer.choices import DeployStatus
from deployer.deploys.analysis import analysis_rejudged
from deployer.deploys.error_budget import budget_blocks, budget_summary
from deployer.deploys.migration_check import check_for, new_files, shipped_findings
from deployer.deploys.plan import changes_shown, deploy_plan
from deployer.deploys.request import (
    rollback_candidates,
)
from deployer.deploys.schema_changes import migrations_described
from deployer.environments.access import access_for
from deployer.environments.freezes import freeze_now, freezes_ahead
from deployer.environments.host_keys import keys_waiting
from deployer.environments.leases import lease_summary
from deployer.environments.locks import lock_summary
from deployer.errors import DeployConflict, DeployRefused
from deployer.models import (
    ApiTestRun,
    BudgetReading,
    ChangeSet,
    Deploy,
    DeployLog,
    Environment,
    Measurement,
    Service,
    WebhookDelivery,
)
from deployer.notify.hooks_out import hooks_backlog
from deployer.sources import integration_health


@require_GET
def services(request: SignedInRequest) -> HttpResponse:
    filters = MatrixFilterForm(request.GET)
    if not filters.is_valid():
        refused = {"error": form_error(filters), "rows": [], "team": "", "q": ""}
        return render(request, "dashboards/services.html", refused, status=400)
    team, query, show_all = filters.cleaned_data["team"], filters.cleaned_data["q"], filters.cleaned_data["show"]
    page = 1 if show_all else filters.cleaned_data["page"] or 1
    first_teams = access_for(request.user).teams()
    key = cache_key(team, query, first_teams, None if show_all else page)
    cached = cache.get(key) if cache_enabled() else None
    if cached is None:
        size = settings.SERVICES_PAGE_SIZE
        window = None if show_all else slice((page - 1) * size, page * size)
        matrix = selectors.services_matrix(team=team, query=query, first_teams=first_teams, window=window)
        cached = {
            "columns": matrix.columns,
            "teams": matrix.teams,
            "rows": matrix_rows(matrix),
            "paging": services_paging(matrix.total, page, size, show_all=bool(show_all)),
        }
        if cache_enabled():
            cache.set(key, cached, timeout=settings.MATRIX_CACHE_SECONDS)
    context = {**cached, "team": team, "q": query, "mine_first": bool(first_teams)}
    return render(request, "dashboards/services.html", context)


def service_page(
    request: SignedInRequest,
    service: Service,
    *,
    error: str = "",
    status: int = 200,
    running: Deploy | None = None,
    lease_choice: tuple[Environment, dict[str, str]] | None = None,
) -> HttpResponse:
    query = request.GET.get("q", "").replace("\0", "").strip()[:100]  # PostgreSQL refuses NUL in text
    show_all = request.GET.get("branches") == "all"
    access = access_for(request.user)
    states = [
        replace(
            state,
            deploy_url=reverse("deploy-create", args=[service.name, state.environment.name]),
            plan_url=reverse("deploy-plan", args=[service.name, state.environment.name]),
            can_deploy=access.can_deploy(state.environment),
            refusal="" if access.can_deploy(state.environment) else access.why_not_deploy(state.environment),
            lock=lock_summary(state.environment) if state.environment.is_locked else "",
            freezes=[freeze.described for freeze in freezes_ahead(state.environment)],
            frozen=bool(freeze_now(state.environment.freeze)),
            lease=lease_summary(state.environment) if state.environment.is_leased else "",
            lease_mine=state.environment.is_leased and state.environment.leased_by_id == request.user.pk,
            rollback_to=rollback_candidates(state.environment) if access.can_deploy(state.environment) else [],
            api_runs=recent_runs(state.environment) if service.api_tests else [],
            keys_waiting=keys_waiting(state.environment),
            behind=selectors.hosts_behind(state.environment, state.current),
        )
        for state in selectors.service_environments(service)
    ]
    limit = None if show_all else settings.SERVICE_BRANCHES_SHOWN
    branch_rows, branches_total = selectors.service_branches(service, states, query=query, limit=limit)
    tag_rows = selectors.service_tags(service, states) if not query else []
    reading = BudgetReading.objects.filter(service=service).first() if service.slo else None
    context = {
        "service": service,
        "states": states,
        "budget": budget_summary(reading) if service.slo else "",
        "budget_blocks": budget_blocks(service) if service.slo else "",
        "rows": branch_rows,
        "branches_total": branches_total,
        "tag_rows": tag_rows,
        "all_branches": show_all,
        "commit_base": integration_health.commit_url(service.github_repo, ""),
        "q": query,
        "freshness": selectors.sync_states(service),
        "uses_jenkins": bool(service.jenkins_job and integration_health.enabled(integration_health.JENKINS))
        or (service.ci == "github" and integration_health.enabled(integration_health.GITHUB)),
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
def service_detail(request: SignedInRequest, name: str) -> HttpResponse:
    return service_page(request, get_object_or_404(Service.objects.select_related("team"), name=name))


def environment_or_404(name: str, environment: str) -> Environment:
    return get_object_or_404(
        Environment.objects.select_related("service__team", "locked_by", "leased_by"),
        service__name=name,
        name=environment,
    )


def refused_page(request: SignedInRequest, env: Environment, exc: DeployRefused) -> HttpResponse:
    running = exc.running if isinstance(exc, DeployConflict) else None
    return service_page(request, env.service, error=str(exc), status=exc.status_code, running=running)


@require_GET
def api_run_detail(request: SignedInRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(ApiTestRun.objects.select_related("environment__service"), pk=pk)
    return render(request, "dashboards/api_run.html", {"run": run, "runs": [run]})


@require_GET
def deploy_plan_view(request: SignedInRequest, name: str, environment: str) -> HttpResponse:
    """What a deploy of `?ref=` (or `?promote=1`: what runs in the environment before) will do, with the
    button that starts it."""
    env = environment_or_404(name, environment)
    form = PlanForm(request.GET)
    if not form.is_valid():
        return service_page(request, env.service, error=form_error(form), status=400)
    try:
        plan = deploy_plan(
            environment=env, ref=form.cleaned_data["ref"], user=request.user, promote=form.cleaned_data["promote"]
        )
    except DeployRefused as exc:
        return refused_page(request, env, exc)
    context = {"plan": plan, "service": env.service, "is_admin": access_for(request.user).is_admin}
    return render(request, "dashboards/plan.html", context)


@require_GET
def plan_changes(request: SignedInRequest, name: str, environment: str, pk: int) -> HttpResponse:
    """The plan's commits and migration files once a worker has listed them (the plan page polls this; after
    WAIT_AT_MOST it says no worker answered, and a reload of the plan asks again)."""
    env = environment_or_404(name, environment)
    row = get_object_or_404(ChangeSet, pk=pk, service=env.service)
    changes = changes_shown(row, env, request.user)
    too_many = (changes.ahead or 0) > env.commit_warning
    context = {"changes": changes, "env": env, "service": env.service, "too_many": too_many}
    return render(request, "dashboards/_plan_changes.html", context)


def form_error(form: forms.Form) -> str:
    """A form's errors as one line: "field: what is wrong; ..."."""
    return "; ".join(f"{field}: {' '.join(str(e) for e in errors)}" for field, errors in form.errors.items())


def deploy_or_404(pk: int) -> Deploy:
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
def deploy_detail(request: SignedInRequest, pk: int) -> HttpResponse:
    return deploy_page(request, deploy_or_404(pk))


def deploy_page(request: SignedInRequest, deploy: Deploy, *, error: str = "", status: int = 200) -> HttpResponse:
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
        "measurements": (measurements := list(deploy.measurements.all())),
        "canary_charts": _canary_charts(measurements),
        **_rejudged(request, deploy, measurements),
        "error": error,
        "frozen": freeze_now(deploy.environment.freeze),
        **_migration_check_of(deploy),
    }
    return render(request, "dashboards/deploy.html", context, status=status)


def _rejudged(request: SignedInRequest, deploy: Deploy, measurements: list[Measurement]) -> dict[str, object]:
    """?rejudge=1: the measurements judged again by today's catalog (no query sent, nothing changed)."""
    analysis = deploy.environment.analysis
    if not (request.GET.get("rejudge") and measurements and analysis):
        return {"can_rejudge": bool(measurements and analysis)}
    rows, judged = analysis_rejudged(deploy, AnalysisSpec.model_validate(analysis))
    return {"can_rejudge": True, "rejudged": rows, "rejudged_verdict": judged}


def _canary_charts(measurements: list[Measurement]) -> dict[str, dict[str, list[object]]]:
    """Per metric, the canary's and the baseline's value at each measurement (None: no data, drawn as a gap)."""
    charts: dict[str, dict[str, list[object]]] = {}
    for m in measurements:
        chart = charts.setdefault(m.metric, {"labels": [], "canary": [], "baseline": []})
        chart["labels"].append(f"#{m.number}")
        chart["canary"].append(m.canary)
        chart["baseline"].append(m.baseline)
    return charts


def _migration_check_of(deploy: Deploy) -> dict[str, object]:
    """The migration check of what the deploy ships, for its page (nothing when it ships no new file)."""
    migrations = migrations_described(deploy.environment, list(deploy.migrations or []))
    if not new_files(migrations):
        return {}
    check = check_for(deploy.environment, deploy.sha)
    findings = shipped_findings(check, migrations) if check else []
    return {"migration_check": check, "migration_findings": findings}


@require_GET
def deploy_log_text(request: SignedInRequest, pk: int) -> HttpResponse:
    """The deploy's whole log as kept, as a text file (the page shows it line by line)."""
    deploy = deploy_or_404(pk)
    rows = DeployLog.objects.filter(deploy=deploy).order_by("pk").values_list("at", "host", "level", "message")

    def lines() -> Iterator[str]:
        yield f"# deploy #{deploy.pk}: {deploy.environment.service.name} {deploy.environment.name} {deploy.ref}\n"
        if deploy.log_lines_dropped:
            yield f"# {deploy.log_lines_dropped} lines from its middle were not kept (GANTRY_DEPLOY_LOG_MAX_LINES)\n"
        for at, host, level, message in rows.iterator(chunk_size=2000):
            yield f"{at:%Y-%m-%d %H:%M:%S} {host or '-'} {level} {message}\n"

    # Built whole (the log is capped): a slow download holds no thread or database cursor.
    response = HttpResponse("".join(lines()), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="deploy-{deploy.pk}.log"'
    return response


@require_GET
def deploy_log(request: SignedInRequest, pk: int) -> HttpResponse:
    """The log lines after `?after=<id>`, the deploy's summary, and (while it
    runs) the next poller: htmx swaps these in place of the old poller."""
    cursor = LogCursorForm(request.GET)
    if not cursor.is_valid():
        return HttpResponseBadRequest("after must be the id of the last log line shown (a whole number >= 0)")
    deploy = deploy_or_404(pk)
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


def _rights(request: SignedInRequest, deploy: Deploy) -> dict[str, bool]:
    """What the deploy's summary offers this person (the log poll re-renders it several times a second)."""
    awaiting = deploy.status == DeployStatus.AWAITING_APPROVAL
    paused = deploy.paused_at is not None and deploy.status == DeployStatus.RUNNING
    return {
        "can_approve": awaiting and access_for(request.user).can_approve(deploy),
        "can_decide": paused and access_for(request.user).can_deploy(deploy.environment),
        "is_admin": bool(getattr(request.user, "is_superuser", False)),
    }


@require_GET
@user_passes_test(lambda user: user.is_superuser)
def integration_status(request: SignedInRequest) -> HttpResponse:
    """Each integration's health: last sync, errors, GitHub's remaining rate-limit budget, webhook deliveries.

    For Gantry admins (superusers) only, like /metrics: it shows what outside systems answered.
    """
    context = {
        "integrations": integration_health.overview(),
        "stale": selectors.stale_sync_states()[:200],
        "deliveries": WebhookDelivery.objects.order_by("-received_at")[:20],
        "hooks_out": hooks_backlog(),
    }
    return render(request, "dashboards/status.html", context)
