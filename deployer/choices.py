"""Gantry's status vocabulary: every deploy and host state, its colour and its group."""

from __future__ import annotations

from django.db import models


class DeployStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"

    @classmethod
    def active(cls) -> frozenset[str]:
        """States that hold the environment: at most one such deploy per environment."""
        return frozenset({cls.QUEUED, cls.RUNNING})

    @classmethod
    def finished(cls) -> frozenset[str]:
        return frozenset({cls.SUCCEEDED, cls.FAILED})

    @property
    def colour(self) -> str:
        return _DEPLOY_COLOURS[self]


_DEPLOY_COLOURS = {
    DeployStatus.QUEUED: "grey",
    DeployStatus.RUNNING: "blue",
    DeployStatus.SUCCEEDED: "green",
    DeployStatus.FAILED: "red",
}


class HostStatus(models.TextChoices):
    PENDING = "pending", "pending"
    STAGED = "staged", "staged"
    ACTIVATING = "activating", "activating"
    LIVE = "live", "live"
    FAILED = "failed", "failed"

    @property
    def colour(self) -> str:
        return _HOST_COLOURS[self]


_HOST_COLOURS = {
    HostStatus.PENDING: "grey",
    HostStatus.STAGED: "blue",
    HostStatus.ACTIVATING: "amber",
    HostStatus.LIVE: "green",
    HostStatus.FAILED: "red",
}
