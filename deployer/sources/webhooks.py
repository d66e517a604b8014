"""Webhooks: the web process records each delivery and enqueues its id;
a worker applies it. A delivery id seen before is ignored, and a delivery
recorded while the broker was down is picked up by the periodic sweep.

A push moves a branch only from the head we know (its `before`): a replayed
or out-of-order push, signed as it is, must not move a branch back to an older
sha. Anything else is resynced from GitHub, which knows where the branch is."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from deployer import queue
from deployer.integrations import github, github_actions
from deployer.lib.refs import SHA_RE
from deployer.models import Branch, CatalogState, Service, WebhookDelivery
from deployer.sources import branches, builds, checks

logger = logging.getLogger(__name__)
GITHUB_EVENTS = {"push", "create", "delete", "workflow_run", "check_suite", "check_run", "status"}
CHECK_EVENTS = {"check_suite", "check_run", "status"}
HEADS = "refs/heads/"
TAGS = "refs/tags/"
ZERO_SHA = "0" * 40  # a push's `before` when it created the branch


def delivery_record(*, source: str, delivery_id: str, event: str, payload: dict[str, Any]) -> WebhookDelivery | None:
    """Store a delivery and enqueue it after commit; None if this delivery id was seen before."""
    try:
        with transaction.atomic():
            delivery = WebhookDelivery.objects.create(
                source=source, delivery_id=delivery_id, event=event, payload=payload
            )
    except IntegrityError:
        return None
    queue.enqueue_after_commit(queue.PROCESS_WEBHOOK, delivery.pk)
    return delivery


def github_service(payload: dict[str, Any]) -> Service | None:
    full_name = (payload.get("repository") or {}).get("full_name", "")
    return Service.objects.filter(github_repo__iexact=full_name).first() if full_name else None


def delivery_process(*, delivery_id: int) -> None:
    """Apply one recorded delivery (once: a processed one is skipped)."""
    claimed = WebhookDelivery.objects.filter(pk=delivery_id, processed_at__isnull=True).update(
        processed_at=timezone.now()
    )
    if not claimed:
        return
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    try:
        outcome = _github_apply(delivery) if delivery.source == "github" else "ignored"
    except Exception as exc:
        WebhookDelivery.objects.filter(pk=delivery_id).update(processed_at=None, outcome=f"failed: {exc}")
        raise
    WebhookDelivery.objects.filter(pk=delivery_id).update(outcome=outcome)


def _github_apply(delivery: WebhookDelivery) -> str:
    payload = delivery.payload
    catalog = _catalog_pushed(payload) if delivery.event == "push" and is_catalog_repository(payload) else ""
    service = github_service(payload)
    if service is None:
        return catalog or "no service uses this repository"
    if delivery.event == "workflow_run" or delivery.event in CHECK_EVENTS:
        return _ci_event(service, delivery.event, payload)
    if _is_tag(delivery.event, payload):  # the tag list again, with its ETags (and continuous delivery after)
        queue.enqueue_after_commit(queue.SYNC_BRANCHES, service.pk)
        return f"{catalog}; tags changed" if catalog else "tags changed: synced again"
    if delivery.event == "push":
        outcome = _push(service, payload)
    elif payload.get("ref_type") != "branch":
        return "not a branch"
    elif delivery.event == "create":
        branches.branch_created(service=service, name=payload["ref"])
        outcome = f"branch {payload['ref']} created"
    else:
        branches.branch_deleted(service=service, name=payload["ref"])
        outcome = f"branch {payload['ref']} deleted"
    queue.enqueue_after_commit(queue.DELIVER, service.pk)
    return f"{catalog}; {outcome}" if catalog else outcome


def _ci_event(service: Service, event: str, payload: dict[str, Any]) -> str:
    """A workflow run started or ended (recorded from the event itself: no request), or checks changed (the
    runs list again, conditional); continuous delivery looks again after either."""
    if service.ci != "github":
        return f"{service.name} does not build with GitHub Actions (ci: github)"
    if event in CHECK_EVENTS:
        queue.enqueue_after_commit(queue.SYNC_BUILDS, service.pk)
        sha = _checked_sha(event, payload)
        # The sync reads the commit's checks as they are then, not the payload's (deliveries come out of order).
        if checks.checks_wanted(service) and sha and checks.checks_mark_stale(service, sha):
            return f"checks changed: builds and the checks of {sha[:8]} synced again"
        return "checks changed: builds synced again"
    try:
        run = github_actions.workflow_run_of(payload["workflow_run"])
    except (KeyError, TypeError, ValueError):
        return "not a workflow run"
    said = f"workflow run {run.path} #{run.number} of {run.sha[:8]}: {run.conclusion or run.status}"
    if not builds.run_counted(service, run):
        return f"{said} (not counted: github_actions names other workflows or events)"
    builds.runs_record(service, [run])
    queue.enqueue_after_commit(queue.DELIVER, service.pk)
    return said


def _checked_sha(event: str, payload: dict[str, Any]) -> str:
    """The commit a check_run, check_suite or status event is about ("" when the payload names none)."""
    holder, key = (payload, "sha") if event == "status" else (payload.get(event), "head_sha")
    found = holder.get(key) if isinstance(holder, dict) else None
    return found if isinstance(found, str) and SHA_RE.fullmatch(found) else ""


def _is_tag(event: str, payload: dict[str, Any]) -> bool:
    if event == "push":
        return str(payload.get("ref", "")).startswith(TAGS)
    return event in ("create", "delete") and payload.get("ref_type") == "tag"


def is_catalog_repository(payload: dict[str, Any]) -> bool:
    """Is this the repository that holds the catalog (GANTRY_CATALOG_REPO, by any of its URLs)?"""
    if not settings.CATALOG_REPO:
        return False
    repository = payload.get("repository") or {}
    urls = [repository.get(key) for key in ("clone_url", "ssh_url", "git_url", "html_url", "url")]
    return _same_repo(settings.CATALOG_REPO) in {_same_repo(url) for url in urls if isinstance(url, str)}


def _same_repo(url: str) -> str:
    return url.strip().lower().rstrip("/").removesuffix(".git")


def _catalog_pushed(payload: dict[str, Any]) -> str:
    """A push to the catalog's repository: who pushed (GitHub signed it) is kept for that commit's audit
    entry, and a worker reads the catalog now (deployer/ops/catalog_follow.py)."""
    if payload.get("ref") != f"{HEADS}{settings.CATALOG_BRANCH}":
        return "catalog repository: not its branch"
    sha = str(payload.get("after") or "")[:40]
    pusher = str((payload.get("sender") or {}).get("login") or (payload.get("pusher") or {}).get("name") or "")
    CatalogState.objects.get_or_create(pk=1)
    CatalogState.objects.filter(pk=1).update(pushed_sha=sha, pushed_by=f"{pusher[:80]} (GitHub)" if pusher else "")
    queue.enqueue_after_commit(queue.SYNC_CATALOG)
    return f"catalog push by {pusher or 'someone'}: {sha[:12]}"


def _push(service: Service, payload: dict[str, Any]) -> str:
    ref = payload.get("ref", "")
    if not ref.startswith(HEADS):
        return "not a branch"
    name = ref[len(HEADS) :]
    stored = Branch.objects.filter(service=service, name=name).values_list("sha", flat=True).first()
    if payload.get("before") != (stored or ZERO_SHA):
        return _resync(service, name, str(payload.get("before", ""))[:40], stored)
    if payload.get("deleted"):
        branches.branch_deleted(service=service, name=name)
        return f"branch {name} deleted"
    head = payload.get("head_commit") or {}
    branches.branch_pushed(
        service=service,
        head=branches.Head(
            name=name,
            sha=payload["after"],
            author=(head.get("author") or {}).get("name"),
            message=(head.get("message") or "").split("\n", 1)[0] or None,
            committed_at=_when(head.get("timestamp")),
        ),
    )
    return f"branch {name} at {payload['after'][:8]}"


def _resync(service: Service, name: str, before: str, stored: str | None) -> str:
    """A push that does not follow what we know (replayed, out of order, or one missed in between):
    never move the branch by it; ask GitHub where the branch is now."""
    why = f"out of order (it moved {before[:8] or '?'}, we had {stored[:8] if stored else 'no branch'})"
    info = github.branch_head(service.github_repo, name)
    if info is None:
        branches.branch_deleted(service=service, name=name)
        return f"{why}: branch {name} is gone on GitHub, removed"
    branches.branch_pushed(
        service=service, head=branches.Head(name, info.sha, info.author, info.message, info.committed_at)
    )
    return f"{why}: branch {name} resynced from GitHub at {info.sha[:8]}"


def _when(value: str | None) -> datetime | None:
    return parse_datetime(value) if value else None


def deliveries_sweep(*, older_than: timedelta = timedelta(seconds=30)) -> int:
    """Enqueue deliveries that were recorded but never processed (broker down at the time)."""
    stale = WebhookDelivery.objects.filter(processed_at__isnull=True, received_at__lt=timezone.now() - older_than)
    ids = list(stale.values_list("pk", flat=True)[:500])
    for pk in ids:
        queue.enqueue(queue.PROCESS_WEBHOOK, pk)
    return len(ids)
