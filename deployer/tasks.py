"""Celery tasks: thin wrappers that fetch by id and call a service function.

Each task has an explicit name; settings.CELERY_TASK_ROUTES puts it on a queue:
`deploys` (long, its own worker with prefetch 1) or `sync` (branch refreshes).
Periodic tasks are declared in settings.CELERY_BEAT_SCHEDULE.
"""

from __future__ import annotations

import contextlib
import logging

from celery import shared_task
from django.conf import settings

from deployer import branches, gitrepo
from deployer.execution import deploy_execute
from deployer.models import Service

logger = logging.getLogger(__name__)


@shared_task(
    name="gantry.run_deploy",
    acks_late=True,
    soft_time_limit=settings.DEPLOY_TIME_LIMIT,
    time_limit=settings.DEPLOY_TIME_LIMIT + 60,
)
def run_deploy(deploy_id: int) -> None:
    deploy_execute(deploy_id=deploy_id)


@shared_task(name="gantry.sync_branches", ignore_result=True)
def sync_branches(service_id: int) -> None:
    service = Service.objects.filter(pk=service_id).first()
    if service is None:
        return
    # A failure is recorded on the service and shown on its page; the next run tries again.
    with contextlib.suppress(gitrepo.GitError):
        branches.branch_sync(service=service)


@shared_task(name="gantry.sync_all_branches", ignore_result=True)
def sync_all_branches() -> None:
    for service_id in Service.objects.values_list("pk", flat=True):
        sync_branches.delay(service_id)
