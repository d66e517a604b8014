"""The Celery app. Workers run: `celery -A deployer worker -Q deploys` (and sync,notify)."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_init

import deployer.broker  # noqa: F401  (registers the gantryfs:// transport before any connection)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deployer.settings")

app = Celery("gantry")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["deployer"])


@worker_init.connect
def _check_settings(**kwargs: object) -> None:
    """Workers fail at start, like the web server, when an integration is half configured."""
    from django.core import checks

    errors = [m for m in checks.run_checks() if m.is_serious()]
    if errors:
        raise SystemExit("Gantry's settings are incomplete:\n" + "\n".join(f"- {e.msg} ({e.hint})" for e in errors))
