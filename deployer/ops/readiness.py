"""Can this process do its work: the database answers and the broker takes a connection.

/readyz is open to anyone, so it says only which part failed; the error itself
(host names, user names, driver messages) goes to the log.
"""

from __future__ import annotations

import logging

from django.db import connection

from deployer.celery import app

logger = logging.getLogger(__name__)

BROKER_TIMEOUT = 2  # seconds: a readiness probe must answer fast even when the broker hangs


def database_problem() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "not ready"
        logger.warning("readiness: the database does not answer: %s: %s", exc.__class__.__name__, exc)
        return "unavailable"
    return ""


def broker_problem() -> str:
    try:
        with app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT)
    except Exception as exc:
        logger.warning("readiness: the broker does not answer: %s: %s", exc.__class__.__name__, exc)
        return "unavailable"
    return ""
