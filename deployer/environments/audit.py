"""Writing the audit log: one entry per action a person (or Gantry) takes.

The log is append-only three times over: the model refuses save-again and
delete, its queryset refuses update and delete, and the database refuses
UPDATE, DELETE (and on PostgreSQL TRUNCATE) with triggers (migration 0026),
so raw SQL cannot rewrite history either. The one exception, `audit_erasure`,
is for an operator who must erase entries by law, and for a test database
being emptied between tests; it is never used by Gantry's own code paths.
Unlinking a deleted user (actor → NULL) is allowed: the name stays.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.contrib.auth.models import User
from django.db import connection

from deployer.choices import AuditAction
from deployer.models import AuditEntry, Deploy, Environment
from deployer.models.access import SYSTEM_USERNAME
from deployer.notify import grafana_outbox, hooks_out


def audit_record(
    action: AuditAction,
    *,
    actor: User | None,
    actor_name: str = "",
    environment: Environment | None = None,
    deploy: Deploy | None = None,
    detail: str = "",
    outcome: str = "",
    duration_seconds: float | None = None,
) -> AuditEntry:
    """Append an entry; `actor` None means Gantry itself, or whoever `actor_name` names (a shell account)."""
    if deploy is not None and environment is None:
        environment = deploy.environment
    team = environment.service.team if environment else None
    entry = AuditEntry.objects.create(
        actor=actor,
        actor_name=actor.get_username() if actor is not None else (actor_name or SYSTEM_USERNAME),
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
    grafana_outbox.audit_noted(entry)  # a lock, an override, an emergency: a point on Grafana's timeline
    hooks_out.audit_noted(entry, environment, deploy)  # a request, a lock, an unlock: the catalog's webhooks
    return entry


_erasing: ContextVar[bool] = ContextVar("audit_erasure", default=False)
ERASURE_FUNCTION = "gantry_audit_erasure"  # what the SQLite triggers ask (registered on every connection)


@contextmanager
def audit_erasure() -> Iterator[None]:
    """Lift the database's append-only guard on the audit log for the block, on this connection."""
    token = _erasing.set(True)
    postgres = connection.vendor == "postgresql"
    try:
        if postgres:
            with connection.cursor() as cursor:
                cursor.execute("SET gantry.audit_erasure = 'on'")
        yield
    finally:
        _erasing.reset(token)
        if postgres:
            with connection.cursor() as cursor:
                cursor.execute("RESET gantry.audit_erasure")


def sqlite_connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    """Give every SQLite connection the function the audit triggers call (a connection without it,
    like the sqlite3 shell, cannot change the log at all: the trigger fails closed)."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(ERASURE_FUNCTION, 0, lambda: int(_erasing.get()))
