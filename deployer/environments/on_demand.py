"""What a person may ask for now, outside a deploy: a refresh of a service's branches and builds, a run of an
environment's API tests. Both need the deploy permission there (a viewer gets 403), both are done by a
worker, and both say so when the task queue cannot take them.

A Refresh is taken at most once per REFRESH_THROTTLE_SECONDS per service (claimed with a conditional
UPDATE, so it holds across web processes): a held-down button never queues a sync per press.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Q
from django.utils import timezone

from deployer import queue
from deployer.environments.access import access_for
from deployer.errors import PermissionRefused, QueueDown, Throttled
from deployer.lib.humanize import ago
from deployer.models import ApiTestRun, Environment, Service


def service_refresh(*, service: Service, user: User) -> None:
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
        if service.jenkins_job or service.ci == "github":
            queue.enqueue(queue.SYNC_BUILDS, service.pk)
    except queue.QueueUnavailable as exc:
        Service.objects.filter(pk=service.pk, refresh_requested_at=now).update(refresh_requested_at=None)
        raise QueueDown(f"could not ask for a refresh: {exc}; the scheduled sync runs when it is back") from exc


def api_tests_request(*, environment: Environment, user: User) -> None:
    """Run the environment's suites now, in a worker (Run now): for people who may deploy there."""
    access_for(user).require_deploy(environment)
    try:
        queue.enqueue(queue.RUN_API_TESTS, environment.pk, ApiTestRun.Trigger.MANUAL)
    except queue.QueueUnavailable as exc:
        raise QueueDown(f"could not start the API tests: {exc}; nothing was started, try again later") from exc
