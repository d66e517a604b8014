"""Leases on shared test environments.

An environment with `lease_minutes` is shared: a person's deploy there claims
it for that long (owner, branch, expiry shown on every page). Someone else's
deploy is refused with the choice to take the lease over (recorded) or to
queue behind it; queued requests are deployed, in order, when the lease ends.
Leases end by themselves at their expiry; the holder may release one early or
extend it. Gantry's own deploys (continuous delivery) wait for the lease.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from deployer.choices import AuditAction
from deployer.environments.access import access_for
from deployer.environments.audit import audit_record
from deployer.errors import DeployRefused
from deployer.lib import generations
from deployer.models import Environment, LeaseRequest


class LeaseHeld(DeployRefused):
    """Someone else holds the environment's lease; the person may take it over or queue behind it."""

    status_code = 409


def holder_name(environment: Environment) -> str:
    return environment.leased_by.get_username() if environment.leased_by else "someone"


def lease_summary(environment: Environment) -> str:
    holder = holder_name(environment)
    until = timezone.localtime(environment.lease_expires_at).strftime("%H:%M") if environment.lease_expires_at else ""
    return f"leased by {holder} for {environment.lease_ref} until {until}"


def lease_check(environment: Environment, user: User | None, *, take_over: bool) -> str:
    """Before a deploy: '' if the person may go ahead; 'take_over' if they take someone's lease.

    Raises LeaseHeld when another person holds the lease (Gantry itself always waits).
    """
    if not environment.lease_minutes or not environment.is_leased:
        return ""
    if user is not None and environment.leased_by_id == user.pk:
        return ""
    if user is None or access_for(user).is_system:
        raise LeaseHeld(f"{environment} is {lease_summary(environment)}; continuous delivery waits for it")
    if take_over:
        return "take_over"
    raise LeaseHeld(
        f"{environment} is {lease_summary(environment)}. Take the lease over (it is recorded, and "
        f"{holder_name(environment)} sees it), or queue behind it: your deploy then starts when it ends."
    )


def lease_claim(environment: Environment, user: User, ref: str, *, taken_over: bool) -> None:
    """After a person's deploy is recorded: the environment is theirs for lease_minutes (call in its transaction)."""
    if not environment.lease_minutes:
        return
    previous = lease_summary(environment) if environment.is_leased else ""
    expires = timezone.now() + timedelta(minutes=environment.lease_minutes)
    Environment.objects.filter(pk=environment.pk).update(leased_by=user, lease_ref=ref, lease_expires_at=expires)
    environment.leased_by, environment.lease_ref, environment.lease_expires_at = user, ref, expires
    action = AuditAction.LEASE_TAKEN_OVER if taken_over else AuditAction.LEASE_TAKEN
    detail = f"{ref} until {timezone.localtime(expires):%H:%M}" + (f" (was {previous})" if taken_over else "")
    audit_record(action, actor=user, environment=environment, detail=detail)


def lease_release(environment: Environment, *, user: User) -> None:
    if environment.leased_by_id != user.pk and not access_for(user).is_admin:
        raise DeployRefused(f"only {environment.leased_by} (or an admin) may release this lease")
    with transaction.atomic():
        if not Environment.objects.filter(pk=environment.pk, leased_by__isnull=False).update(
            leased_by=None, lease_ref="", lease_expires_at=None
        ):
            raise DeployRefused(f"{environment} has no lease to release")
        audit_record(AuditAction.LEASE_RELEASED, actor=user, environment=environment, detail=environment.lease_ref)
    generations.bump(generations.SERVICES)


def lease_extend(environment: Environment, *, user: User) -> None:
    """The holder keeps it another lease_minutes from now."""
    if not environment.is_leased or environment.leased_by_id != user.pk:
        raise DeployRefused("only the holder of an active lease may extend it")
    expires = timezone.now() + timedelta(minutes=environment.lease_minutes)
    Environment.objects.filter(pk=environment.pk).update(lease_expires_at=expires)
    audit_record(AuditAction.LEASE_TAKEN, actor=user, environment=environment, detail=f"extended until {expires:%H:%M}")
    generations.bump(generations.SERVICES)


def lease_enqueue(environment: Environment, *, user: User, ref: str, checklist: tuple[str, ...] = ()) -> LeaseRequest:
    """Queue a deploy of `ref` behind the lease (one per person); it is requested when the lease ends."""
    access_for(user).require_deploy(environment)
    request, _ = LeaseRequest.objects.update_or_create(
        environment=environment, user=user, defaults={"ref": ref, "checklist": list(checklist)}
    )
    audit_record(AuditAction.LEASE_QUEUED, actor=user, environment=environment, detail=f"{ref}, behind the lease")
    return request
