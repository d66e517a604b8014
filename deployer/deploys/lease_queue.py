"""Deploys queued behind a lease: requested, oldest first, once the lease has ended."""

from __future__ import annotations

import logging

from django.db import transaction

from deployer.deploys.request import deploy_request
from deployer.deploys.rules import DeployOptions
from deployer.errors import DeployConflict, DeployRefused
from deployer.models import DeployLog, LeaseRequest

logger = logging.getLogger(__name__)


def leases_advance() -> list[int]:
    """For each environment whose lease ended, request the oldest queued deploy; return the new deploy ids."""
    started = []
    waiting = LeaseRequest.objects.select_related("environment__service__team", "environment__leased_by", "user")
    seen: set[int] = set()
    for request in waiting.order_by("created_at", "pk"):
        environment = request.environment
        if environment.pk in seen or environment.is_leased:
            continue
        seen.add(environment.pk)
        try:
            with transaction.atomic():
                # Claimed by deleting it: a second scheduler's round finds it gone. A refusal rolls it back.
                if not LeaseRequest.objects.filter(pk=request.pk).delete()[0]:
                    continue
                options = DeployOptions(checklist=tuple(request.checklist))
                deploy = deploy_request(environment=environment, ref=request.ref, user=request.user, options=options)
        except DeployConflict:
            continue  # something runs there now; the request is back, and the next round tries again
        except DeployRefused as exc:
            logger.warning("queued deploy of %s to %s by %s dropped: %s", request.ref, environment, request.user, exc)
            LeaseRequest.objects.filter(pk=request.pk).delete()
            continue
        DeployLog.objects.create(
            deploy=deploy, at=deploy.created_at, level="info", message="requested from the queue behind a lease"
        )
        started.append(deploy.pk)
    return started
