"""Gantry's deploy domain and its Django settings: one app label (`deployer`), one migration history.

At the root: settings, the Celery app (celery.py, broker.py: the embedded broker), the vocabulary
(choices.py, errors.py), enqueueing by task name (queue.py), and the entry points that call the rooms
below: tasks.py (workers), selectors.py (reads for the pages), chatops.py (Slack), admin.py, management/.
The rooms, and the one-way arrows between them, are in docs/development.md and
tests/house/test_layout.py. Importing this package exposes the Celery app (`celery -A deployer`).
"""

from __future__ import annotations

from deployer.celery import app as celery_app

__all__ = ["celery_app"]
