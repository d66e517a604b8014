"""Domain exceptions shared by the deploy rules and the pipeline's steps."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deployer.models import Deploy


class StepFailed(Exception):
    """A deploy step failed for a reason a person can act on; the message says it."""


class DeployRefused(Exception):
    """A deploy request breaks a rule (bad ref, unknown branch); nothing was recorded."""

    status_code = 400


class NotFound(DeployRefused):
    """No such service or environment; the message lists the ones there are."""

    status_code = 404


class PermissionRefused(DeployRefused):
    """The person may not do this here; the message says what grant it needs."""

    status_code = 403


class Throttled(DeployRefused):
    """The same thing was asked for a moment ago and is under way; nothing more was queued."""

    status_code = 429


class QueueDown(DeployRefused):
    """The task queue is unreachable; the message says what happened to the request."""

    status_code = 503


class Locked(DeployRefused):
    """The environment is locked; the message says by whom, why and until when."""

    status_code = 423


class Frozen(Locked):
    """A freeze window is open, or starts before the deploy would end; the message names it."""


class BudgetSpent(DeployRefused):
    """The service's error budget is spent or burning fast and its SLO gates production deploys."""

    status_code = 423


class DeployConflict(DeployRefused):
    """Another deploy already holds the environment; `running` is that deploy."""

    status_code = 409

    def __init__(self, message: str, running: Deploy) -> None:
        super().__init__(message)
        self.running = running


class SyncFailed(Exception):
    """A sync could not run or finish; the message is what the page shows as the stale reason."""
