"""Can this process do its work: the database answers and the broker takes a connection."""

from __future__ import annotations

from django.db import connection

from deployer.celery import app

BROKER_TIMEOUT = 2.0  # seconds: a readiness probe must answer fast even when the broker hangs


def database_problem() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "not ready"; the text says which
        return f"{exc.__class__.__name__}: {exc}"
    return ""


def broker_problem() -> str:
    try:
        with app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT)
    except Exception as exc:
        return f"{exc.__class__.__name__}: {exc}"
    return ""
