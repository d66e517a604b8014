"""The buttons: every POST a person makes on a page (deploy, promote, roll back, approve, reject, cancel,
answer a paused deploy, mark one failed, lock, unlock, leases, Refresh, Run now). Each validates, calls one
deployer function, and answers with the page again (saying why not) or a redirect saying what happened."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from dashboards.forms import DeployForm, LockForm, PromoteForm, ReasonForm, RollbackForm
from dashboards.signed_in import SignedInRequest
from dashboards.views import deploy_or_404, deploy_page, environment_or_404, form_error, refused_page, service_page
from deployer import queue
from deployer.choices import Decision
from deployer.deploys.actions import deploy_approve, deploy_cancel, deploy_decide, deploy_mark_failed, deploy_reject
from deployer.deploys.request import deploy_promote, deploy_request, deploy_rollback, queue_waiting_message
from deployer.deploys.rules import DeployOptions
from deployer.deploys.schema_changes import RollbackNeedsConfirmation
from deployer.environments.leases import LeaseHeld, lease_enqueue, lease_extend, lease_release
from deployer.environments.locks import environment_lock, environment_unlock
from deployer.environments.on_demand import api_tests_request, service_refresh
from deployer.errors import DeployRefused, QueueDown, Throttled
from deployer.models import Deploy, Environment, Service


@require_POST
def service_refresh_view(request: SignedInRequest, name: str) -> HttpResponse:
    service = get_object_or_404(Service.objects.select_related("team"), name=name)
    try:
        service_refresh(service=service, user=request.user)
    except Throttled as exc:
        messages.info(request, _sentence(exc))
    except QueueDown as exc:
        messages.error(request, _sentence(exc))
    except DeployRefused as exc:
        return service_page(request, service, error=str(exc), status=exc.status_code)
    else:
        messages.info(request, f"Refreshing {service.name}; reload in a few seconds.")
    return redirect("service", name=service.name)


def _sentence(said: Exception | str) -> str:
    """A refusal's (or any) words as a message line: capitalised, with a full stop."""
    text = str(said)
    return f"{text[:1].upper()}{text[1:]}."


@require_POST
def deploy_create(request: SignedInRequest, name: str, environment: str) -> HttpResponse:
    env = environment_or_404(name, environment)
    form = DeployForm(request.POST)
    if not form.is_valid():
        return service_page(request, env.service, error=form_error(form), status=400)
    if request.POST.get("lease") == "queue":
        try:
            lease_enqueue(
                env, user=request.user, ref=form.cleaned_data["ref"], checklist=_options(request, env, form).checklist
            )
        except DeployRefused as exc:
            return refused_page(request, env, exc)
        messages.info(request, f"Queued {form.cleaned_data['ref']} behind the lease on {env}: it starts when it ends.")
        return redirect("service", name=env.service.name)
    try:
        deploy = deploy_request(
            environment=env, ref=form.cleaned_data["ref"], user=request.user, options=_options(request, env, form)
        )
    except LeaseHeld as exc:
        return service_page(
            request, env.service, error=str(exc), status=exc.status_code, lease_choice=(env, form.cleaned_data)
        )
    except DeployRefused as exc:
        return refused_page(request, env, exc)
    return _to_deploy(request, deploy)


@require_POST
def api_tests_run_view(request: SignedInRequest, name: str, environment: str) -> HttpResponse:
    """Run the environment's API test suites now (they run in a worker; results appear in the strip)."""
    env = environment_or_404(name, environment)
    try:
        api_tests_request(environment=env, user=request.user)
    except QueueDown as exc:
        messages.error(request, _sentence(exc))
    except DeployRefused as exc:
        return refused_page(request, env, exc)
    else:
        messages.info(request, f"Running the API tests against {env}; the results appear in its strip in a moment.")
    return redirect("service", name=env.service.name)


@require_POST
def lease_release_view(request: SignedInRequest, name: str, environment: str) -> HttpResponse:
    env = environment_or_404(name, environment)
    try:
        lease_release(env, user=request.user)
    except DeployRefused as exc:
        return refused_page(request, env, exc)
    queue.enqueue_after_commit(queue.ADVANCE_LEASES, True)
    messages.info(request, f"Released the lease on {env}.")
    return redirect("service", name=env.service.name)


@require_POST
def lease_extend_view(request: SignedInRequest, name: str, environment: str) -> HttpResponse:
    env = environment_or_404(name, environment)
    try:
        lease_extend(env, user=request.user)
    except DeployRefused as exc:
        return refused_page(request, env, exc)
    messages.info(request, f"Extended your lease on {env}.")
    return redirect("service", name=env.service.name)


def _options(request: SignedInRequest, env: Environment, form: DeployForm | None = None) -> DeployOptions:
    """The checklist ticks and the lock override sit in the environment's card, named after it."""
    return DeployOptions(
        checklist=tuple(request.POST.getlist(f"checklist-{env.name}")),
        override_lock=request.POST.get(f"override-{env.name}") == "yes",
        emergency_reason=form.cleaned_data["emergency_reason"] if form else "",
        expected_sha=form.cleaned_data["expected_sha"] if form else "",
        take_over_lease=request.POST.get("lease") == "take_over",
        confirm_schema=request.POST.get("confirm_schema") == "yes",
        skip_hosts=tuple(name[:300] for name in request.POST.getlist("skip_host")[:1000]),
        skip_reason=request.POST.get("skip_reason", "")[:2000],
        freeze_override=request.POST.get(f"freeze-{env.name}", "")[:2000],
    )


@require_POST
def deploy_rollback_view(request: SignedInRequest, name: str, environment: str) -> HttpResponse:
    env = environment_or_404(name, environment)
    form = RollbackForm(request.POST)
    if not form.is_valid():
        return service_page(request, env.service, error=form_error(form), status=400)
    target = None
    if form.cleaned_data["to"]:
        target = Deploy.objects.filter(pk=form.cleaned_data["to"], environment=env).first()
        if target is None:
            error = f"deploy #{form.cleaned_data['to']} is not a deploy of {env}; pick a release from the list"
            return service_page(request, env.service, error=error, status=400)
    try:
        deploy = deploy_rollback(
            environment=env, user=request.user, to=target, confirm_schema=form.cleaned_data["confirm_schema"]
        )
    except RollbackNeedsConfirmation as exc:  # the page that asks, listing what it goes back across
        context = {"environment": env, "service": env.service, "target": exc.target, "crossed": exc.crossed}
        return render(request, "dashboards/rollback_confirm.html", context, status=409)
    except DeployRefused as exc:
        return refused_page(request, env, exc)
    return _to_deploy(request, deploy)


@require_POST
def deploy_promote_view(request: SignedInRequest, name: str, environment: str) -> HttpResponse:
    """A promotion confirmed on its plan page (the sha it showed); asked without one, the plan page first: the
    schema guard, the migration check and every rule ask there, as for any deploy."""
    env = environment_or_404(name, environment)
    form = PromoteForm(request.POST)
    if not form.is_valid() or not form.cleaned_data["expected_sha"]:
        return redirect(f"{reverse('deploy-plan', args=[env.service.name, env.name])}?promote=1", permanent=False)
    options = replace(_options(request, env), expected_sha=form.cleaned_data["expected_sha"])
    try:
        deploy = deploy_promote(environment=env, user=request.user, options=options)
    except DeployRefused as exc:
        return refused_page(request, env, exc)
    return _to_deploy(request, deploy)


def _to_deploy(request: SignedInRequest, deploy: Deploy) -> HttpResponse:
    """The deploy's page, saying so at the top when the deploy could not be handed to the task queue."""
    if deploy.waits_for_queue:
        messages.error(request, _sentence(queue_waiting_message(deploy)))
    return redirect("deploy", pk=deploy.pk)


@require_POST
def deploy_cancel_view(request: SignedInRequest, pk: int) -> HttpResponse:
    deploy = deploy_or_404(pk)
    stop = request.POST.get("stop") == "1"
    try:
        deploy_cancel(deploy=deploy, user=request.user, stop=stop)
    except DeployRefused as exc:
        messages.error(request, str(exc))
    else:
        how = "the commands running on hosts are being stopped" if stop else "it stops after the hosts in flight"
        messages.info(request, f"Cancel requested for deploy #{deploy.pk}: {how}.")
    return redirect("deploy", pk=deploy.pk)


def _deploy_action(request: SignedInRequest, deploy: Deploy, action: Callable[[], object], done: str) -> HttpResponse:
    """Run a person's action on a deploy: its page again with the refusal, or a redirect saying it is done."""
    try:
        action()
    except DeployRefused as exc:
        return deploy_page(request, deploy, error=str(exc), status=exc.status_code)
    messages.info(request, done)
    return _to_deploy(request, deploy)


def _reason(request: SignedInRequest) -> str:
    form = ReasonForm(request.POST)
    return form.cleaned_data["reason"] if form.is_valid() else ""


@require_POST
def deploy_approve_view(request: SignedInRequest, pk: int) -> HttpResponse:
    deploy = deploy_or_404(pk)
    return _deploy_action(
        request,
        deploy,
        lambda: deploy_approve(deploy=deploy, user=request.user),
        f"Approved deploy #{deploy.pk}; it is queued.",
    )


@require_POST
def deploy_reject_view(request: SignedInRequest, pk: int) -> HttpResponse:
    deploy = deploy_or_404(pk)
    reason = _reason(request)
    return _deploy_action(
        request,
        deploy,
        lambda: deploy_reject(deploy=deploy, user=request.user, reason=reason),
        f"Rejected deploy #{deploy.pk}.",
    )


@require_POST
def deploy_decide_view(request: SignedInRequest, pk: int) -> HttpResponse:
    deploy = deploy_or_404(pk)
    choice = request.POST.get("choice", "")
    if choice not in Decision.values:
        return deploy_page(request, deploy, error="choose retry, skip or abort", status=400)
    return _deploy_action(
        request,
        deploy,
        lambda: deploy_decide(deploy=deploy, user=request.user, choice=Decision(choice)),
        f"Deploy #{deploy.pk}: {Decision(choice).label}.",
    )


@require_POST
def deploy_mark_failed_view(request: SignedInRequest, pk: int) -> HttpResponse:
    deploy = deploy_or_404(pk)
    reason = _reason(request)
    return _deploy_action(
        request,
        deploy,
        lambda: deploy_mark_failed(deploy=deploy, user=request.user, reason=reason),
        f"Marked deploy #{deploy.pk} failed; {deploy.environment} is free.",
    )


@require_POST
def environment_lock_view(request: SignedInRequest, name: str, environment: str) -> HttpResponse:
    env = environment_or_404(name, environment)
    form = LockForm(request.POST)
    if not form.is_valid():
        return service_page(request, env.service, error=form_error(form), status=400)
    hours = form.cleaned_data["hours"]
    expires_at = timezone.now() + timedelta(hours=hours) if hours else None
    try:
        environment_lock(env, user=request.user, reason=form.cleaned_data["reason"], expires_at=expires_at)
    except DeployRefused as exc:
        return refused_page(request, env, exc)
    messages.info(request, f"Locked {env}.")
    return redirect("service", name=env.service.name)


@require_POST
def environment_unlock_view(request: SignedInRequest, name: str, environment: str) -> HttpResponse:
    env = environment_or_404(name, environment)
    try:
        environment_unlock(env, user=request.user)
    except DeployRefused as exc:
        return refused_page(request, env, exc)
    messages.info(request, f"Unlocked {env}.")
    return redirect("service", name=env.service.name)
