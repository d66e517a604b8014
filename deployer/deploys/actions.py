"""What people do to a deploy once it is asked for: approve or reject it, cancel it, answer a paused one,
or (an admin) mark a stuck one failed. Each is checked against who may, and recorded in the audit log."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from deployer.choices import AuditAction, Decision, DeployStatus
from deployer.deploys.lifecycle import deploy_transition
from deployer.deploys.request import hand_to_queue
from deployer.environments.access import access_for
from deployer.environments.audit import audit_record
from deployer.errors import DeployRefused, PermissionRefused
from deployer.lib.text import one_line
from deployer.models import Deploy, DeployLog
from deployer.notify import outbox


def deploy_cancel(*, deploy: Deploy, user: User, stop: bool = False) -> Deploy:
    """Cancel a deploy: at once if it has not started; if it runs, between batches (the hosts in flight
    finish), or with `stop` at once: the commands running on hosts now are stopped (their process groups
    sent TERM, then KILL), nothing is rolled back, and the reason names the hosts stopped halfway. The
    release phase always finishes (a migration stopped halfway is worse). A cancel already asked for
    may be turned into a stop.
    """
    who = user.get_username()
    is_requester = deploy.requested_by_id is not None and deploy.requested_by_id == user.pk
    if not is_requester and not access_for(user).can_deploy(deploy.environment):
        raise PermissionRefused(
            f"{who} may not cancel deploys to {deploy.environment}: only its requester, "
            "people who may deploy there, and admins"
        )
    if deploy_transition(
        deploy,
        to=DeployStatus.CANCELLED,
        reason=f"cancelled by {who} before it started",
        only_from={DeployStatus.QUEUED, DeployStatus.AWAITING_APPROVAL},
    ):
        audit_record(AuditAction.CANCELLED, actor=user, deploy=deploy, detail="before it started")
        return deploy
    running = Deploy.objects.filter(pk=deploy.pk, status=DeployStatus.RUNNING)
    requested = running.filter(cancel_requested_at__isnull=True).update(
        cancel_requested_at=timezone.now(), cancelled_by=user, cancel_stops_commands=stop
    )
    stopping = bool(
        stop and not requested and running.filter(cancel_stops_commands=False).update(cancel_stops_commands=True)
    )
    deploy.refresh_from_db()
    if requested or stopping:
        how = "stopping the commands running on hosts now" if stop else "stopping after the hosts in flight"
        DeployLog.objects.create(
            deploy=deploy, at=timezone.now(), level="warning", message=f"cancel requested by {who}: {how}"
        )
        audit_record(AuditAction.CANCELLED, actor=user, deploy=deploy, detail=f"while it ran: {how}")
        outbox.story_changed(deploy)
    elif deploy.status in DeployStatus.finished():
        raise DeployRefused(f"deploy #{deploy.pk} has already ended ({deploy.status}); there is nothing to cancel")
    return deploy


def deploy_approve(*, deploy: Deploy, user: User) -> Deploy:
    """A second person lets a deploy that awaits approval run."""
    _require_approver(deploy, user, "approve")
    who = user.get_username()
    with transaction.atomic():
        if not deploy_transition(
            deploy, to=DeployStatus.QUEUED, reason=f"approved by {who}", only_from={DeployStatus.AWAITING_APPROVAL}
        ):
            raise DeployRefused(
                f"deploy #{deploy.pk} is {deploy.status}; only a deploy awaiting approval can be approved"
            )
        now = timezone.now()
        Deploy.objects.filter(pk=deploy.pk).update(approved_by=user, approved_at=now, enqueued_at=now)
        audit_record(AuditAction.APPROVED, actor=user, deploy=deploy)
    deploy.refresh_from_db()
    hand_to_queue(deploy)
    return deploy


def deploy_reject(*, deploy: Deploy, user: User, reason: str = "") -> Deploy:
    _require_approver(deploy, user, "reject")
    who = user.get_username()
    said = one_line(reason)
    if not deploy_transition(
        deploy,
        to=DeployStatus.CANCELLED,
        reason=f"rejected by {who}" + (f": {said}" if said else ""),
        only_from={DeployStatus.AWAITING_APPROVAL},
    ):
        raise DeployRefused(f"deploy #{deploy.pk} is {deploy.status}; only a deploy awaiting approval can be rejected")
    audit_record(AuditAction.REJECTED, actor=user, deploy=deploy, detail=said)
    return deploy


def deploy_mark_failed(*, deploy: Deploy, user: User, reason: str) -> Deploy:
    """An admin ends a stuck deploy (and so frees its environment), with a reason; audited.

    A worker still running it stops at its next batch boundary (it checks the state).
    """
    access_for(user).require_admin("mark a deploy failed")
    said = one_line(reason)
    if not said:
        raise DeployRefused("say why you mark it failed (it is kept in the deploy's record and the audit log)")
    who = user.get_username()
    if not deploy_transition(deploy, to=DeployStatus.FAILED, reason=f"marked failed by {who}: {said}"):
        raise DeployRefused(f"deploy #{deploy.pk} has already ended ({deploy.status})")
    audit_record(AuditAction.MARKED_FAILED, actor=user, deploy=deploy, detail=said)
    return deploy


def deploy_decide(*, deploy: Deploy, user: User, choice: Decision) -> Deploy:
    """A person's answer to a paused deploy (guided failure): retry the failed hosts, skip them, or abort."""
    access_for(user).require_deploy(deploy.environment)
    if not Deploy.objects.filter(
        pk=deploy.pk, status=DeployStatus.RUNNING, paused_at__isnull=False, decision=""
    ).update(decision=choice, decided_by=user):
        raise DeployRefused(f"deploy #{deploy.pk} is not paused waiting for a decision (someone may have answered)")
    deploy.refresh_from_db()
    audit_record(AuditAction.DECIDED, actor=user, deploy=deploy, detail=f"{choice.label}: {deploy.pause_reason}")
    outbox.story_changed(deploy)
    return deploy


def _require_approver(deploy: Deploy, user: User, verb: str) -> None:
    access = access_for(user)
    if access.can_approve(deploy):
        return
    if deploy.requested_by_id == user.pk:
        raise PermissionRefused(f"you requested deploy #{deploy.pk}; a second person must {verb} it")
    raise PermissionRefused(
        f"{access.username} may not {verb} deploys to {deploy.environment}: that needs an approver or "
        "prod_deployer grant for its service or team"
    )
