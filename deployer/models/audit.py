"""The audit log: append-only here and in the database (deployer/environments/audit.py)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from deployer.choices import (
    AuditAction,
    DeployStatus,
)
from deployer.models.scrub import Scrubbed


class AuditQuerySet(models.QuerySet["AuditEntry"]):
    # The audit log is append-only: bulk changes are refused like single ones.
    def update(self, **kwargs: object) -> int:
        raise PermissionError("audit entries cannot be changed")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise PermissionError("audit entries cannot be deleted")


class AuditEntry(Scrubbed):
    """Who did what to which deploy or environment, and why. Append-only; names
    are kept as text so an entry outlives the user, service or environment."""

    SCRUBBED = ("detail",)

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=30, choices=AuditAction.choices)
    service = models.CharField(max_length=100, blank=True, db_index=True)
    environment = models.CharField(max_length=50, blank=True)
    deploy_id = models.PositiveBigIntegerField(null=True, blank=True, db_index=True)
    detail = models.TextField(blank=True)
    # What the deploy was, copied when the entry is written (the deploy row may be deleted later).
    team = models.CharField(max_length=100, blank=True, db_index=True)
    ref = models.CharField(max_length=255, blank=True)
    sha = models.CharField(max_length=40, blank=True)
    previous_sha = models.CharField(max_length=40, blank=True)
    trigger = models.CharField(max_length=20, blank=True)
    # Only on "deploy ended" entries: how it ended and how long it ran.
    outcome = models.CharField(max_length=20, blank=True, db_index=True)
    duration_seconds = models.FloatField(null=True, blank=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        target = f"{self.service}/{self.environment}" if self.environment else self.service
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name} {self.get_action_display()} {target}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise PermissionError("audit entries cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise PermissionError("audit entries cannot be deleted")

    @property
    def outcome_choice(self) -> DeployStatus:
        return DeployStatus(self.outcome)
