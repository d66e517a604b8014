"""Outgoing webhooks (the catalog's `webhooks:`): every deploy event as signed JSON, for the team's own tools.

Events: deploy.requested, deploy.started, deploy.batch_done, deploy.analysis (with its verdict), the deploy's
ending (deploy.succeeded, .failed, .rolled_back, .cancelled, .tests_failed, .interrupted), and
environment.locked / environment.unlocked. Writers only add HookDelivery rows, in the transaction of the change
they tell (a savepoint: a failure here never undoes it), and enqueue a send after commit: a receiver down or
slow never touches a deploy.

What a receiver gets (POST, Content-Type: application/json):
- X-Gantry-Event: the event; X-Gantry-Delivery: a UUID, the same on every retry (drop duplicates with it);
- X-Gantry-Timestamp: Unix seconds when this attempt was signed; refuse one older than 5 minutes (replay);
- X-Gantry-Signature: "sha256=" + hex HMAC-SHA256 of "<timestamp>.<body>" under the webhook's secret;
- the body: {"event", "delivery", "sequence", "at", "service", "environment", "production", "deploy": {id,
  ref, sha, previous_sha, status, trigger, requested_by, reason, url} or null, "actor", "detail"}.
  `sequence` counts a deploy's events from 1: retries deliver out of order, the sequence puts them back.
  Events of no deploy (locks) have no sequence.

Sending: a 2xx is delivered; anything else is tried again after BACKOFF (the first few by the task itself, the
later ones by the minute's sweep) and given up after the last, saying why; a redirect is never followed (put
the final URL in the catalog). The URL is checked like an API test's: never a link-local or metadata address.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, F, Min, Q
from django.utils import timezone

from deployer import queue
from deployer.choices import AuditAction, DeployStatus
from deployer.lib.guarded_http import (
    AddressRefused,
    blocked_reason,
    check_resolution,
    deadline,
    guarded_session,
    origin_of,
    show_origin,
)
from deployer.models import AuditEntry, Deploy, DeployPhase, Environment, HookDelivery
from deployer.notify.outbox import SendLater
from deployer.notify.story import page_url

logger = logging.getLogger(__name__)

# Seconds before each next try; after the last one the delivery is given up (about 11 hours in all).
BACKOFF = (5, 15, 60, 300, 900, 3600, 3 * 3600, 6 * 3600)
RETRIED_BY_TASK = 60  # shorter waits are the task's own retry; longer ones wait for the sweep
CLAIM_SECONDS = 60
SEND_SECONDS = 10.0  # the whole exchange, however slowly a receiver answers
DETAIL_MAX = 2000

STATUS_EVENTS = {
    DeployStatus.RUNNING: "deploy.started",
    DeployStatus.SUCCEEDED: "deploy.succeeded",
    DeployStatus.FAILED: "deploy.failed",
    DeployStatus.ROLLED_BACK: "deploy.rolled_back",
    DeployStatus.CANCELLED: "deploy.cancelled",
    DeployStatus.TESTS_FAILED: "deploy.tests_failed",
    DeployStatus.INTERRUPTED: "deploy.interrupted",
}
AUDIT_EVENTS = {
    AuditAction.DEPLOY_REQUESTED: "deploy.requested",
    AuditAction.ROLLBACK_REQUESTED: "deploy.requested",
    AuditAction.EMERGENCY_DEPLOY: "deploy.requested",
    AuditAction.LOCKED: "environment.locked",
    AuditAction.UNLOCKED: "environment.unlocked",
}


def deploy_changed(deploy: Deploy, to: str) -> None:
    """The deploy reached `to` (called in the transaction that moved it)."""
    if to in STATUS_EVENTS:
        _record(deploy.environment, deploy, STATUS_EVENTS[DeployStatus(to)], detail=deploy.reason)


def phase_ended(deploy: Deploy, phase: DeployPhase) -> None:
    """A batch is done, or a canary analysis has its verdict (the phase's label says it)."""
    event = "deploy.analysis" if phase.kind == DeployPhase.Kind.ANALYSIS else "deploy.batch_done"
    _record(deploy.environment, deploy, event, detail=phase.label)


def audit_noted(entry: AuditEntry, environment: Environment | None, deploy: Deploy | None) -> None:
    """A request, a lock or an unlock, as the audit log recorded it."""
    event = AUDIT_EVENTS.get(AuditAction(entry.action)) if entry.action in AuditAction.values else None
    if event and environment is not None:
        _record(environment, deploy, event, detail=entry.detail, actor=entry.actor_name)


def _record(environment: Environment, deploy: Deploy | None, event: str, *, detail: str, actor: str = "") -> None:
    hooks = [hook for hook in environment.webhooks or [] if not hook.get("events") or event in hook["events"]]
    if not hooks:
        return
    try:
        with transaction.atomic():  # a savepoint: the change being told stands whatever happens here
            made = _rows(environment, deploy, event, hooks, detail=detail, actor=actor)
    except Exception:
        logger.exception("webhook event %s of %s was not recorded", event, environment)
        return
    for row in made:
        queue.enqueue_after_commit(queue.SEND_HOOK, row.pk)


def _rows(
    environment: Environment, deploy: Deploy | None, event: str, hooks: list[dict[str, Any]], *, detail: str, actor: str
) -> list[HookDelivery]:
    sequence = None
    if deploy is not None:
        Deploy.objects.filter(pk=deploy.pk).update(hook_sequence=F("hook_sequence") + 1)
        sequence = Deploy.objects.filter(pk=deploy.pk).values_list("hook_sequence", flat=True).get()
    now = timezone.now()
    body = {
        "event": event,
        "sequence": sequence,
        "at": now.isoformat(),
        "service": environment.service.name,
        "environment": environment.name,
        "production": environment.production,
        "deploy": _deploy_fields(deploy) if deploy is not None else None,
        "actor": actor,
        "detail": (detail or "")[:DETAIL_MAX],
    }
    made = []
    for hook in hooks:
        delivery = uuid.uuid4()
        made.append(
            HookDelivery.objects.create(
                delivery_id=delivery,
                environment=environment,
                deploy=deploy,
                url=hook["url"],
                secret_env=hook["secret_env"],
                event=event,
                payload={**body, "delivery": str(delivery)},
                next_attempt_at=now,
            )
        )
    return made


def _deploy_fields(deploy: Deploy) -> dict[str, Any]:
    fresh = Deploy.objects.select_related("requested_by").get(pk=deploy.pk)
    return {
        "id": fresh.pk,
        "ref": fresh.ref,
        "sha": fresh.sha,
        "previous_sha": fresh.previous_sha,
        "status": fresh.status,
        "trigger": fresh.trigger,
        "requested_by": fresh.requested_by.get_username() if fresh.requested_by else None,
        "reason": fresh.reason,
        "url": page_url("deploy", fresh.pk),
    }


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Gantry-Signature value: what a receiver computes again to trust the body."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def hook_send(delivery_pk: int) -> None:
    """One attempt at a pending delivery that is due; SendLater when the task should try again soon."""
    claimed = _claim(delivery_pk)
    if claimed is None:
        return  # delivered, given up, not due yet, or another worker holds it
    row = HookDelivery.objects.get(pk=delivery_pk)
    try:
        status, error = _post(row)
    finally:
        HookDelivery.objects.filter(pk=row.pk, claimed_at=claimed).update(claimed_at=None)
    attempts = row.attempts + 1
    if error == "":
        HookDelivery.objects.filter(pk=row.pk).update(
            state=HookDelivery.State.DELIVERED, attempts=attempts, last_status=status, delivered_at=timezone.now()
        )
        return
    final = attempts > len(BACKOFF) or status in (301, 302, 303, 307, 308, 410) or error.startswith("!")
    wait = 0 if final else BACKOFF[attempts - 1]
    HookDelivery.objects.filter(pk=row.pk).update(
        state=HookDelivery.State.FAILED if final else HookDelivery.State.PENDING,
        attempts=attempts,
        last_status=status,
        last_error=error.lstrip("!")[:2000],
        next_attempt_at=timezone.now() + timedelta(seconds=wait),
    )
    if final:
        logger.warning("gave up webhook %s to %s: %s", row.event, shown_url(row.url), error.lstrip("!"))
    elif wait <= RETRIED_BY_TASK:
        raise SendLater(wait, error)


def _claim(delivery_pk: int) -> datetime | None:
    now = timezone.now()
    free = Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - timedelta(seconds=CLAIM_SECONDS))
    due = HookDelivery.objects.filter(pk=delivery_pk, state=HookDelivery.State.PENDING, next_attempt_at__lte=now)
    return now if due.filter(free).update(claimed_at=now) else None


def _post(row: HookDelivery) -> tuple[int | None, str]:
    """(status, "") when the receiver took it; else the status (if any) and why not ("!…": never retried)."""
    secret = os.environ.get(row.secret_env, "")
    if not secret:
        return None, f"!{row.secret_env} is not set where Gantry's workers run: set it to the webhook's secret"
    body = json.dumps(row.payload, sort_keys=True, separators=(",", ":")).encode()
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Gantry-Webhooks/1",
        "X-Gantry-Event": row.event,
        "X-Gantry-Delivery": str(row.delivery_id),
        "X-Gantry-Timestamp": stamp,
        "X-Gantry-Signature": signature(secret, stamp, body),
    }
    session = guarded_session()
    try:
        _, host, port = origin_of(row.url)
        check_resolution(host, port)
        with deadline(session, SEND_SECONDS) as cut_short:
            response = session.post(
                row.url, data=body, headers=headers, timeout=SEND_SECONDS, allow_redirects=False, stream=True
            )
            said = response.raw.read(300, decode_content=True).decode(errors="replace").strip()
            response.close()
    except (AddressRefused, ValueError) as exc:
        return None, f"!{exc}"
    except Exception as exc:
        if reason := blocked_reason(exc):
            return None, f"!{reason}"
        if cut_short():
            return None, f"no answer within {SEND_SECONDS:.0f} s"
        # Only the exception's kind: requests' message repeats the URL, whose path may hold a token.
        return None, f"could not reach {shown_url(row.url)}: {type(exc).__name__}"
    if 200 <= response.status_code < 300:
        return response.status_code, ""
    if 300 <= response.status_code < 400:
        return response.status_code, f"answered {response.status_code}: redirects are not followed; use the final URL"
    return response.status_code, f"answered {response.status_code}: {said}"


def shown_url(url: str) -> str:
    """Where a webhook goes, as pages and logs show it: its origin only (a path may hold the receiver's token)."""
    try:
        return show_origin(origin_of(url)) + "/…"
    except ValueError:
        return "(not a URL)"


def hooks_sweep(limit: int = 200) -> int:
    """Send what is due and not being sent (retries after a longer wait, sends whose message was lost)."""
    now = timezone.now()
    due = list(
        HookDelivery.objects.filter(state=HookDelivery.State.PENDING, next_attempt_at__lte=now)
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - timedelta(seconds=CLAIM_SECONDS)))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in due:
        queue.enqueue_after_commit(queue.SEND_HOOK, pk)
    return len(due)


def hooks_backlog() -> list[dict[str, Any]]:
    """Per receiver: what waits, how long the oldest has, what was given up, the last error (the status page)."""
    rows = (
        HookDelivery.objects.exclude(state=HookDelivery.State.DELIVERED)
        .values("url")
        .annotate(
            waiting=Count("pk", filter=Q(state=HookDelivery.State.PENDING)),
            failed=Count("pk", filter=Q(state=HookDelivery.State.FAILED)),
            oldest=Min("created_at", filter=Q(state=HookDelivery.State.PENDING)),
        )
        .order_by("url")
    )
    backlog = []
    for row in rows:
        last = HookDelivery.objects.filter(url=row["url"]).exclude(last_error="").order_by("-pk").first()
        backlog.append({**row, "url": shown_url(row["url"]), "last_error": last.last_error if last else ""})
    return backlog
