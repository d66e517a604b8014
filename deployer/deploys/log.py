"""A deploy's log: rollout code logs through `logging`; a handler writes the
lines onto the deploy (capped), where the live page reads them."""

from __future__ import annotations

import logging
import threading
from collections import deque
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
    """Stores the records of one deploy as DeployLog rows (the row masks the deploy's secrets: a command may
    print its config), keeping its head and its tail when it is long: the first half of `max_lines` stay,
    and after them the newest lines, written as they come (the live page follows them) while the oldest
    lines past the head are deleted in batches. A failing build's end is what a person reads first."""

    TRIM_BATCH = 200

    def __init__(self, deploy_id: int, max_lines: int) -> None:
        super().__init__(level=logging.INFO)
        self.deploy_id = deploy_id
        self.head_room = max_lines // 2
        # The tail keeps its size even when a resumed deploy's earlier lines used the head's room.
        self.tail_size = max(max_lines - self.head_room, settings.DEPLOY_LOG_MAX_LINES // 4)
        self.tail: deque[int] = deque()  # ids of the lines kept after the head, oldest first
        self.dropped = 0
        self.count_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "deploy_id", None) != self.deploy_id:
            return
        with self.count_lock:
            if self.head_room <= 0 and self.tail_size <= 0:
                self.dropped += 1
                return
            in_head = self.head_room > 0
            self.head_room -= 1 if in_head else 0
        try:
            message = record.getMessage()
            if record.exc_info and record.levelno >= logging.ERROR:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            row = DeployLog.objects.create(
                deploy_id=self.deploy_id,
                at=datetime.fromtimestamp(record.created, tz=UTC),
                host=getattr(record, "host", ""),
                level=record.levelname.lower(),
                message=scrubbed(message)[:MAX_LINE_LENGTH],  # masked before it is cut
            )
            if not in_head:
                self._keep_tail(row.pk, slack=self.TRIM_BATCH)
        except Exception:  # a log line must never break the deploy it describes
            self.handleError(record)

    def _keep_tail(self, pk: int | None = None, *, slack: int = 0) -> None:
        """Note a line kept after the head; past the tail's size (+ `slack`), delete the oldest of them."""
        with self.count_lock:
            if pk is not None:
                self.tail.append(pk)
            doomed = []
            if len(self.tail) > self.tail_size + slack:
                while len(self.tail) > self.tail_size:
                    doomed.append(self.tail.popleft())
        if doomed:  # counted as they go: a worker killed later leaves the count true
            DeployLog.objects.filter(deploy_id=self.deploy_id, pk__in=doomed).delete()
            Deploy.objects.filter(pk=self.deploy_id).update(log_lines_dropped=F("log_lines_dropped") + len(doomed))

    def settle(self) -> None:
        self._keep_tail()

    def close(self) -> None:
        self._keep_tail()
        super().close()


def deploy_log_settle(deploy_id: int) -> None:
    """Trim the deploy's log to its cap now, before its end is recorded: whoever reads the log of a deploy that
    has ended (a page, a test) must never see the up to TRIM_BATCH lines still waiting to be trimmed."""
    for handler in list(logger.handlers):
        if isinstance(handler, DeployLogHandler) and handler.deploy_id == deploy_id:
            handler.settle()


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
        try:
            handler.close()  # the tail trimmed to its size
        except Exception:  # a log must never hide why the deploy ended (the database may be what failed)
            logging.getLogger(__name__).exception("could not trim the log of deploy #%s", deploy.pk)
        if handler.dropped:
            Deploy.objects.filter(pk=deploy.pk).update(log_lines_dropped=F("log_lines_dropped") + handler.dropped)
