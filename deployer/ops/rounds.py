"""Periodic rounds that happen once, however many schedulers run.

Exactly one `celery beat` should run, but two by mistake (a second machine
started with the same recipe, a rolling restart) must not make Gantry do things
twice. Each periodic task begins by claiming its round: a conditional update
that succeeds for one scheduler per interval. What a round then acts on is
claimed item by item too (a deploy by its status, a scheduled API test by its
environment, a queued deploy behind a lease by deleting its request), so even
two rounds at once do each thing once.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from deployer.models import ScheduledRound

# A round claimed less than this part of its interval after the last one is a second scheduler's.
SHARE_OF_INTERVAL = 0.8


def round_claim(name: str, *, every_seconds: float) -> bool:
    """True for the one caller that may run this round of the periodic task `name`."""
    now = timezone.now()
    long_ago = now - timedelta(days=1)
    ScheduledRound.objects.get_or_create(name=name, defaults={"started_at": long_ago})
    cutoff = now - timedelta(seconds=every_seconds * SHARE_OF_INTERVAL)
    return bool(ScheduledRound.objects.filter(name=name, started_at__lte=cutoff).update(started_at=now))
