"""A deploy's log: rollout code logs through `logging`; a handler writes the
lines onto the deploy (capped), where the live page reads them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from django.conf import settings
from django.db.models import F

from deployer.lib.secrets import hiding, scrubbed
from deployer.models import Deploy, DeployLog

MAX_LINE_LENGTH = 4000
logger = logging.getLogger("gantry.deploy")


def deploy_logger(deploy_id: int, host: str = "") -> logging.LoggerAdapter[logging.Logger]:
    """The logger rollout code writes to; its lines land on deploy `deploy_id`."""
    return logging.LoggerAdapter(logger, {"deploy_id": deploy_id, "host": host})


class DeployLogHandler(logging.Handler):
    """Stores the records of one deploy as DeployLog rows, up to a cap (the row masks the deploy's secrets:
    a command may print its config)."""

    def __init__(self, deploy_id: int, max_lines: int) -> None:
        super().__init__(level=logging.INFO)
        self.deploy_id = deploy_id
        self.room = max_lines
        self.dropped = 0
        self.count_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "deploy_id", None) != self.deploy_id:
            return
        with self.count_lock:
            if self.room <= 0:
                self.dropped += 1
                return
            self.room -= 1
        try:
            message = record.getMessage()
            if record.exc_info and record.levelno >= logging.ERROR:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            DeployLog.objects.create(
                deploy_id=self.deploy_id,
                at=datetime.fromtimestamp(record.created, tz=UTC),
                host=getattr(record, "host", ""),
                level=record.levelname.lower(),
                message=scrubbed(message)[:MAX_LINE_LENGTH],  # masked before it is cut
            )
        except Exception:  # a log line must never break the deploy it describes
            self.handleError(record)


@contextmanager
def deploy_logging(deploy: Deploy) -> Iterator[list[str]]:
    """While active, records for `deploy` are written onto its log. Yields the list of values this process
    hides meanwhile in everything it stores (the caller adds the deploy's secrets once it knows them)."""
    already = DeployLog.objects.filter(deploy=deploy).count()
    handler = DeployLogHandler(deploy.pk, max(settings.DEPLOY_LOG_MAX_LINES - already, 0))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with hiding() as hidden:
            yield hidden
    finally:
        logger.removeHandler(handler)
        if handler.dropped:
            Deploy.objects.filter(pk=deploy.pk).update(log_lines_dropped=F("log_lines_dropped") + handler.dropped)
