"""Settling deploys that nobody is running any more.

- A running deploy whose heartbeat stopped (its worker died) becomes
  `interrupted`; that frees its environment. It never resumes by itself: the
  reason lists the hosts that were being switched, for a person to check.
- A queued deploy whose job no worker took (the message was lost) is sent
  again; after QUEUED_GIVE_UP_SECONDS it becomes `interrupted`. One that never
  reached the queue (it was unreachable when the deploy was requested) is sent
  at the first round the queue answers.

Runs periodically (beat) and whenever a worker starts.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from deployer import queue
from deployer.choices import DeployStatus, HostStatus
from deployer.deploys.lifecycle import deploy_transition
from deployer.models import Deploy, DeployLog

logger = logging.getLogger(__name__)


def deploys_reap() -> list[int]:
    """Settle silent deploys; return the ids of those marked interrupted."""
    return _reap_running() + _reap_queued()


def _reap_running() -> list[int]:
    stale = timezone.now() - timedelta(seconds=settings.DEPLOY_HEARTBEAT_TIMEOUT)
    silent = Deploy.objects.filter(status=DeployStatus.RUNNING).filter(
        Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, started_at__lt=stale)
    )
    reaped = []
    for deploy in silent.select_related("environment__service"):
        if deploy_transition(deploy, to=DeployStatus.INTERRUPTED, reason=_why(deploy)):
            reaped.append(deploy.pk)
    return reaped


def _why(deploy: Deploy) -> str:
    beat = deploy.heartbeat_at or deploy.started_at
    when = timezone.localtime(beat).strftime("%H:%M:%S") if beat else "never"
    attention = [
        record.host.address if record.host else record.address  # a host may have left the catalog since
        for record in deploy.hosts.select_related("host").filter(status__in=HostStatus.needs_attention())
    ]
    if attention:
        hosts = (
            f"check {', '.join(attention)}: {'it was' if len(attention) == 1 else 'they were'} being switched or "
            "restarted (current points at a complete release, but the service may not have restarted)"
        )
    else:
        hosts = "no host was being switched"
    return f"the worker running it stopped (last heartbeat {when}); it will not resume by itself; {hosts}"


def _reap_queued() -> list[int]:
    now = timezone.now()
    give_up = now - timedelta(seconds=settings.QUEUED_GIVE_UP_SECONDS)
    reaped = []
    for deploy in Deploy.objects.filter(status=DeployStatus.QUEUED, created_at__lt=give_up):
        reason = (
            f"no worker took it within {settings.QUEUED_GIVE_UP_SECONDS // 60} min: is a worker "
            "consuming the deploys queue running?"
        )
        if deploy_transition(deploy, to=DeployStatus.INTERRUPTED, reason=reason):
            reaped.append(deploy.pk)
    resend = now - timedelta(seconds=settings.QUEUED_RESEND_SECONDS)
    lost = Deploy.objects.filter(status=DeployStatus.QUEUED).filter(
        Q(queue_waiting_since__isnull=False)  # never reached the queue: send it at once
        | Q(enqueued_at__lt=resend)
        | Q(enqueued_at__isnull=True, created_at__lt=resend)
    )
    for deploy in lost.only("pk", "queue_waiting_since", "enqueued_at"):
        # Claimed first (another scheduler's round finds it sent); the worker's claim of the deploy makes a
        # second message harmless anyway, if the first was only slow.
        sent = Deploy.objects.filter(pk=deploy.pk, status=DeployStatus.QUEUED, enqueued_at=deploy.enqueued_at)
        if not sent.update(enqueued_at=now, queue_waiting_since=None):
            continue
        try:
            queue.enqueue(queue.RUN_DEPLOY, deploy.pk)
        except queue.QueueUnavailable as exc:
            logger.warning("cannot resend deploy #%s: %s", deploy.pk, exc)
            Deploy.objects.filter(pk=deploy.pk).update(
                enqueued_at=deploy.enqueued_at, queue_waiting_since=deploy.queue_waiting_since
            )
            break
        if deploy.queue_waiting_since:
            waited = round((now - deploy.queue_waiting_since).total_seconds())
            DeployLog.objects.create(
                deploy=deploy,
                at=now,
                level="info",
                message=f"the task queue is back: sent to a worker (waited {waited} s)",
            )
    return reaped
