"""How fresh each service's data is: every sync records its attempt, success or error.

Pages show "updated N s ago" and a stale badge with the error from these rows.
A person may also ask for fresh data now: deployer.environments.on_demand.
"""

from __future__ import annotations

from django.utils import timezone

from deployer.choices import SyncSource
from deployer.models import Service, SyncState


def sync_state(service: Service, source: SyncSource) -> SyncState:
    state, _ = SyncState.objects.get_or_create(service=service, source=source)
    return state


def sync_succeeded(state: SyncState, *, etags: dict[str, object] | None = None) -> None:
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
