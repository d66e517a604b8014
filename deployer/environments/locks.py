"""Environment locks: a person stops deploys to an environment, with a reason
and an optional expiry. An admin may deploy through a lock after confirming;
an automatic rollback locks the environment until someone unlocks it."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.timesince import timesince

from deployer.choices import AuditAction
from deployer.environments.access import access_for
from deployer.environments.audit import audit_record
from deployer.errors import DeployRefused
from deployer.lib import generations
from deployer.lib.text import REASON_MAX, one_line
from deployer.models import Environment
from deployer.notify import outbox


def environment_lock(
    environment: Environment, *, user: User | None, reason: str, expires_at: datetime | None = None
) -> Environment:
    """Lock `environment`; `user` None is Gantry itself (automatic locks)."""
    reason = one_line(reason, limit=None)
    if not reason:
        raise DeployRefused("say why you lock it (the reason shows on every page and on the deploy buttons)")
    if len(reason) > REASON_MAX:
        raise DeployRefused(f"the reason is {len(reason)} characters; keep it under {REASON_MAX}")
    if expires_at is not None and expires_at <= timezone.now():
        raise DeployRefused("the expiry is in the past; pick a later time, or none for a lock until unlocked")
    if user is not None:
        access_for(user).require_deploy(environment)
    with transaction.atomic():
        Environment.objects.filter(pk=environment.pk).update(
            locked_at=timezone.now(), locked_by=user, lock_reason=reason, lock_expires_at=expires_at
        )
        environment.refresh_from_db(fields=["locked_at", "locked_by", "lock_reason", "lock_expires_at"])
        until = f" until {timezone.localtime(expires_at):%Y-%m-%d %H:%M %Z}" if expires_at else ""
        audit_record(AuditAction.LOCKED, actor=user, environment=environment, detail=f"{reason}{until}")
        outbox.environment_changed(environment)
    generations.bump(generations.SERVICES)
    return environment


def environment_unlock(environment: Environment, *, user: User, reason: str = "") -> Environment:
    """Lift the lock; `reason` (optional) is kept in the audit entry."""
    access_for(user).require_deploy(environment)
    said = one_line(reason)
    with transaction.atomic():
        was = lock_summary(environment)
        if not Environment.objects.filter(pk=environment.pk, locked_at__isnull=False).update(
            locked_at=None, locked_by=None, lock_reason="", lock_expires_at=None
        ):
            raise DeployRefused(f"{environment} is not locked")
        detail = f"was: {was}" + (f"; {said}" if said else "")
        audit_record(AuditAction.UNLOCKED, actor=user, environment=environment, detail=detail)
        outbox.environment_changed(environment)
    environment.refresh_from_db(fields=["locked_at", "locked_by", "lock_reason", "lock_expires_at"])
    generations.bump(generations.SERVICES)
    return environment


def lock_summary(environment: Environment) -> str:
    """'locked by olga 5 minutes ago until 14:00: DB migration' (for buttons, errors and Slack)."""
    who = environment.locked_by.get_username() if environment.locked_by else "Gantry"
    since = ""
    if environment.locked_at:
        elapsed = timesince(environment.locked_at)
        since = " just now" if elapsed.startswith("0\xa0minutes") else f" {elapsed} ago"
    until = (
        f" until {timezone.localtime(environment.lock_expires_at):%Y-%m-%d %H:%M %Z}"
        if environment.lock_expires_at
        else ""
    )
    return f"locked by {who}{since}{until}: {environment.lock_reason}"
