"""The Grafana outbox: the change timeline on the dashboards people already watch.

Each deploy is one region annotation, opened when it starts and closed (PATCH) when it ends, tagged with its
service, environment, outcome and sha; each batch and each canary analysis is a sub-region; a lock, an
unlock, an override or an emergency deploy is a point. Writers only change rows (GrafanaAnnotation) and
enqueue a send after commit, so Grafana down or slow never touches a deploy; a worker brings Grafana up to
the row's newest version, one sender per annotation at a time, retried while Grafana is unavailable.
Off (nothing written) without GANTRY_GRAFANA_URL.
"""

from __future__ import annotations

import html
import logging
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from deployer import queue
from deployer.choices import AuditAction, DeployStatus
from deployer.integrations import grafana
from deployer.models import AuditEntry, Deploy, DeployPhase, GrafanaAnnotation
from deployer.notify.outbox import SendLater
from deployer.notify.story import page_url

logger = logging.getLogger(__name__)

CLAIM_SECONDS = 60
TEXT_MAX = 2000
# Events shown as points: what changes whether and how deploys happen, beside the deploys themselves.
POINTS = frozenset(
    {
        AuditAction.LOCKED,
        AuditAction.UNLOCKED,
        AuditAction.LOCK_OVERRIDDEN,
        AuditAction.FREEZE_OVERRIDDEN,
        AuditAction.EMERGENCY_DEPLOY,
    }
)


class Wanted(NamedTuple):
    time: datetime
    end: datetime
    tags: list[str]
    text: str


def enabled() -> bool:
    return bool(settings.GRAFANA_URL)


def deploy_changed(deploy: Deploy, phase: DeployPhase | None = None) -> None:
    """The deploy's region (from its start on), and `phase`'s sub-region, as the database has them now.
    Never raises: the timeline must not fail the state change that called it (the log says what went wrong)."""
    if not enabled():
        return
    try:
        deploy = Deploy.objects.select_related("environment__service", "requested_by").get(pk=deploy.pk)
        if deploy.started_at is None:
            return  # opened when it starts: a queued deploy has changed nothing yet
        _upsert(f"deploy-{deploy.pk}", deploy, _region(deploy))
        if phase is not None:
            phase.refresh_from_db()
            _upsert(f"phase-{phase.pk}", deploy, _sub_region(deploy, phase))
    except Exception:
        logger.exception("the Grafana timeline of deploy #%s was not updated", deploy.pk)


def annotations_sweep(limit: int = 100) -> int:
    """Send again what waits longer than a send should take (its message lost, or its retries spent)."""
    stale = timezone.now() - timedelta(minutes=2)
    waiting = list(
        GrafanaAnnotation.objects.filter(state=GrafanaAnnotation.State.PENDING, created_at__lt=stale)
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=stale))
        .values_list("pk", flat=True)[:limit]
    )
    for pk in waiting:
        queue.enqueue_after_commit(queue.SEND_GRAFANA, pk)
    return len(waiting)


def audit_noted(entry: AuditEntry) -> None:
    """A point for the events in POINTS."""
    if not enabled() or entry.action not in POINTS:
        return
    action = AuditAction(entry.action)
    tags = ["gantry", action.value, *_where(entry.service, entry.environment)]
    text = f"{entry.actor_name} {action.label}" + (f": {entry.detail}" if entry.detail else "")
    try:
        _upsert(f"audit-{entry.pk}", None, Wanted(entry.at, entry.at, tags, html.escape(text[:TEXT_MAX])))
    except Exception:  # the audit entry is the record; its point on the timeline must not undo it
        logger.exception("the Grafana point of audit entry %s was not recorded", entry.pk)


def _where(service: str, environment: str) -> list[str]:
    return [
        tag for tag in (f"service:{service}" * bool(service), f"environment:{environment}" * bool(environment)) if tag
    ]


def _region(deploy: Deploy) -> Wanted:
    environment = deploy.environment
    status = DeployStatus(deploy.status)
    who = deploy.requested_by.get_username() if deploy.requested_by else "Gantry"
    verb = "rolled back to" if deploy.is_rollback else "deployed"
    head = f"{who} {verb} {deploy.ref} ({deploy.sha[:8]}) to {environment.service.name}/{environment.name}"
    said = f"{head}: {status.label}" + (f" — {deploy.reason}" if deploy.reason else "")
    link = f' <a href="{html.escape(page_url("deploy", deploy.pk), quote=True)}">deploy #{deploy.pk}</a>'
    tags = [
        "gantry",
        "deploy",
        *_where(environment.service.name, environment.name),
        f"outcome:{deploy.status}",
        f"sha:{deploy.sha[:12]}",
    ]
    started = deploy.started_at or deploy.created_at
    return Wanted(started, deploy.finished_at or started, tags, html.escape(said[:TEXT_MAX]) + link)


def _sub_region(deploy: Deploy, phase: DeployPhase) -> Wanted:
    environment = deploy.environment
    tags = ["gantry", phase.kind, *_where(environment.service.name, environment.name)]
    text = html.escape(f"{phase.label[:TEXT_MAX]} (deploy #{deploy.pk})")
    return Wanted(phase.started_at, phase.ended_at or phase.started_at, tags, text)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _upsert(key: str, deploy: Deploy | None, wanted: Wanted) -> None:
    values = {
        "time_ms": _ms(wanted.time),
        "time_end_ms": _ms(wanted.end),
        "tags": wanted.tags,
        "text": wanted.text,
    }
    with transaction.atomic():
        row, created = GrafanaAnnotation.objects.select_for_update().get_or_create(
            key=key, defaults={"deploy": deploy, **values}
        )
        if not created:
            if all(getattr(row, field) == value for field, value in values.items()):
                return
            GrafanaAnnotation.objects.filter(pk=row.pk).update(
                **values, version=F("version") + 1, state=GrafanaAnnotation.State.PENDING
            )
    queue.enqueue_after_commit(queue.SEND_GRAFANA, row.pk)


def annotation_send(annotation_id: int) -> None:
    """Bring Grafana up to date with the annotation's newest version. SendLater when it must wait."""
    if not GrafanaAnnotation.objects.filter(pk=annotation_id).exists() or not enabled():
        return
    claimed = _claim(annotation_id)
    if claimed is None:
        raise SendLater(1, "another worker is sending this annotation")
    try:
        for _ in range(5):
            row = GrafanaAnnotation.objects.get(pk=annotation_id)
            if row.sent_version >= row.version or row.state == GrafanaAnnotation.State.FAILED:
                return
            _send_version(row)
    finally:  # only our own claim: one that expired meanwhile may be another sender's now
        GrafanaAnnotation.objects.filter(pk=annotation_id, claimed_at=claimed).update(claimed_at=None)


def _claim(annotation_id: int) -> datetime | None:
    now = timezone.now()
    free = Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - timedelta(seconds=CLAIM_SECONDS))
    return now if GrafanaAnnotation.objects.filter(pk=annotation_id).filter(free).update(claimed_at=now) else None


def _send_version(row: GrafanaAnnotation) -> None:
    url, token = settings.GRAFANA_URL, settings.GRAFANA_TOKEN
    fields = {"time_ms": row.time_ms, "time_end_ms": row.time_end_ms, "tags": row.tags, "text": row.text}
    try:
        if row.grafana_id is None:
            made = grafana.annotation_create(url, token, **fields)
            # Kept at once: a retry after this point patches it rather than making a second one.
            GrafanaAnnotation.objects.filter(pk=row.pk).update(grafana_id=made)
        else:
            grafana.annotation_patch(url, token, row.grafana_id, **fields)
    except grafana.GrafanaUnavailable as exc:
        GrafanaAnnotation.objects.filter(pk=row.pk).update(attempts=F("attempts") + 1, last_error=str(exc))
        raise SendLater(exc.retry_after or min(60, 2 ** min(row.attempts, 6)), str(exc)) from exc
    except grafana.GrafanaRefused as exc:
        if exc.status == 404 and row.grafana_id is not None:  # deleted in Grafana: made again at the next try
            GrafanaAnnotation.objects.filter(pk=row.pk).update(grafana_id=None, last_error=str(exc))
            return
        GrafanaAnnotation.objects.filter(pk=row.pk).update(
            state=GrafanaAnnotation.State.FAILED, attempts=F("attempts") + 1, last_error=str(exc)
        )
        logger.warning("Grafana refused %s: %s", row, exc)
        return
    # Only forward: a slower sender of an older version never overwrites a newer record.
    GrafanaAnnotation.objects.filter(pk=row.pk, sent_version__lt=row.version).update(
        sent_version=row.version, state=GrafanaAnnotation.State.SENT, attempts=F("attempts") + 1, last_error=""
    )
