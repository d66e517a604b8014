"""History rows for deploys that ended before Gantry wrote "deploy ended" entries (one per finished deploy)."""

from __future__ import annotations

from typing import Any

from django.db import migrations

FINISHED = ("succeeded", "failed", "cancelled", "rolled_back", "interrupted", "tests_failed")


def backfill(apps: Any, schema_editor: Any) -> None:
    Deploy = apps.get_model("deployer", "Deploy")
    AuditEntry = apps.get_model("deployer", "AuditEntry")
    # The entries are dated when each deploy ended, not now (`at` is auto_now_add).
    at = AuditEntry._meta.get_field("at")
    at.auto_now_add = False
    try:
        _write(Deploy, AuditEntry)
    finally:
        at.auto_now_add = True


def _write(Deploy: Any, AuditEntry: Any) -> None:
    done = set(AuditEntry.objects.filter(action="deploy_ended").values_list("deploy_id", flat=True))
    deploys = (
        Deploy.objects.filter(status__in=FINISHED, finished_at__isnull=False)
        .exclude(pk__in=done)
        .select_related("environment__service__team", "requested_by")
        .order_by("pk")
    )
    batch = []
    for deploy in deploys.iterator(chunk_size=1000):
        service = deploy.environment.service
        started = deploy.started_at
        batch.append(
            AuditEntry(
                at=deploy.finished_at,
                actor=deploy.requested_by,
                actor_name=deploy.requested_by.username if deploy.requested_by else "gantry",
                action="deploy_ended",
                service=service.name,
                environment=deploy.environment.name,
                team=service.team.name if service.team else "",
                deploy_id=deploy.pk,
                ref=deploy.ref,
                sha=deploy.sha,
                previous_sha=deploy.previous_sha,
                trigger=deploy.trigger,
                outcome=deploy.status,
                duration_seconds=(deploy.finished_at - started).total_seconds() if started else None,
                detail=deploy.reason[:2000],
            )
        )
        if len(batch) >= 1000:
            AuditEntry.objects.bulk_create(batch)
            batch = []
    AuditEntry.objects.bulk_create(batch)


class Migration(migrations.Migration):
    dependencies = [("deployer", "0020_deploy_commits")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
