"""The phases of a rollout as they happen (each batch, each canary analysis), for the change timeline:
Grafana shows each as a sub-region of the deploy's (notify/grafana_outbox.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.utils import timezone

from deployer.models import Deploy, DeployPhase
from deployer.notify import grafana_outbox, hooks_out


@contextmanager
def phase(deploy: Deploy, kind: DeployPhase.Kind, label: str) -> Iterator[DeployPhase]:
    """Record the stretch the block runs as one phase of `deploy` (its end even when the block raises)."""
    row = DeployPhase.objects.create(deploy=deploy, kind=kind, label=label[:500], started_at=timezone.now())
    grafana_outbox.deploy_changed(deploy, row)
    try:
        yield row
    finally:
        DeployPhase.objects.filter(pk=row.pk).update(ended_at=timezone.now(), label=row.label[:500])
        grafana_outbox.deploy_changed(deploy, row)
        hooks_out.phase_ended(deploy, row)
