"""Writing the audit log: one entry per action a person (or Gantry) takes."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from deployer.access import SYSTEM_USERNAME
from deployer.choices import AuditAction
from deployer.models import AuditEntry, Deploy, Environment


def audit_record(
    action: AuditAction,
    *,
    actor: AbstractBaseUser | None,
    environment: Environment | None = None,
    deploy: Deploy | None = None,
    detail: str = "",
    outcome: str = "",
    duration_seconds: float | None = None,
) -> AuditEntry:
    """Append an entry; `actor` None means Gantry itself."""
    if deploy is not None and environment is None:
        environment = deploy.environment
    team = environment.service.team if environment else None
    return AuditEntry.objects.create(
        actor=actor,
        actor_name=actor.get_username() if actor is not None else SYSTEM_USERNAME,
        action=action,
        service=environment.service.name if environment else "",
        environment=environment.name if environment else "",
        team=team.name if team else "",
        deploy_id=deploy.pk if deploy else None,
        ref=deploy.ref if deploy else "",
        sha=deploy.sha if deploy else "",
        previous_sha=deploy.previous_sha if deploy else "",
        trigger=deploy.trigger if deploy else "",
        outcome=outcome,
        duration_seconds=duration_seconds,
        detail=detail,
    )
