"""How fresh each service's data is: every sync records its attempt, success or error.

Pages show "updated N s ago" and a stale badge with the error from these rows.
A person may ask for fresh data now (Refresh), at most once per
REFRESH_THROTTLE_SECONDS per service, so a held-down button never queues a
sync per press.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q
from django.utils import timezone

from deployer import queue
from deployer.choices import SyncSource
from deployer.environments.access import access_for
from deployer.errors import PermissionRefused, QueueDown, Throttled
from deployer.lib.humanize import ago
from deployer.models import Service, SyncState


def service_refresh(*, service: Service, user: AbstractBaseUser) -> None:
    """Queue a sync of the service's branches (and builds) now.

    Needs the deploy permission on one of its environments (PermissionRefused);
    Throttled when someone asked within REFRESH_THROTTLE_SECONDS; QueueDown when
    the queue cannot take it (the scheduled sync runs when it is back).
    """
    access = access_for(user)
    if not any(access.can_deploy(environment) for environment in service.environments.all()):
        raise PermissionRefused(
            f"{access.username} may not refresh {service.name}: that needs the deploy permission on one of its "
            "environments (it refreshes by itself every few minutes)"
        )
    now = timezone.now()
    recent = now - timedelta(seconds=settings.REFRESH_THROTTLE_SECONDS)
    claimed = (
        Service.objects.filter(pk=service.pk)
        .filter(Q(refresh_requested_at__isnull=True) | Q(refresh_requested_at__lt=recent))
        .update(refresh_requested_at=now)
    )
    if not claimed:
        asked = Service.objects.filter(pk=service.pk).values_list("refresh_requested_at", flat=True).first()
        raise Throttled(f"already refreshing {service.name} (asked {ago(asked)}); reload in a few seconds")
    try:
        queue.enqueue(queue.SYNC_BRANCHES, service.pk)
        if service.jenkins_job:
            queue.enqueue(queue.SYNC_BUILDS, service.pk)
    except queue.QueueUnavailable as exc:
        Service.objects.filter(pk=service.pk, refresh_requested_at=now).update(refresh_requested_at=None)
        raise QueueDown(f"could not ask for a refresh: {exc}; the scheduled sync runs when it is back") from exc


def sync_state(service: Service, source: SyncSource) -> SyncState:
    state, _ = SyncState.objects.get_or_create(service=service, source=source)
    return state


def sync_succeeded(state: SyncState, *, etags: dict[str, str] | None = None) -> None:
    now = timezone.now()
    state.synced_at = state.attempted_at = now
    state.error = ""
    fields = ["synced_at", "attempted_at", "error"]
    if etags is not None:
        state.etags = etags
        fields.append("etags")
    state.save(update_fields=fields)


def sync_failed(state: SyncState, error: str) -> None:
    """Record why a sync failed; the data from the last good sync stays as it was."""
    state.attempted_at = timezone.now()
    state.error = error[:2000]
    state.save(update_fields=["attempted_at", "error"])
