"""Who may do what: grants (per team, service or everywhere) and the flag on Gantry's own account."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from deployer.choices import (
    Role,
)
from deployer.models.catalog import Service, Team


class Grant(models.Model):
    """A role for a user (`dana`) or a group (`@web-oncall`), within a team, a service, or everywhere."""

    principal = models.CharField(max_length=151, help_text="A username, or @group for a Django group.")
    role = models.CharField(max_length=20, choices=Role.choices)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, null=True, blank=True, related_name="grants")
    service = models.ForeignKey(Service, on_delete=models.CASCADE, null=True, blank=True, related_name="grants")
    from_catalog = models.BooleanField(default=False, editable=False, help_text="Replaced by every catalog load.")

    class Meta:
        ordering = ["principal", "role"]
        indexes = [models.Index(fields=["principal"], name="grant_principal")]

    def __str__(self) -> str:
        scope = f"service {self.service}" if self.service_id else f"team {self.team}" if self.team_id else "everywhere"
        return f"{self.principal}: {self.role} ({scope})"


SYSTEM_USERNAME = "gantry"  # the name Gantry's own account gets (and shows as in the audit log), not what makes it one


class SystemIdentity(models.Model):
    """Marks the one account Gantry acts as on its own (continuous delivery): the flag, not the name,
    makes it the system (a person who signs up as "gantry" is a person)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    def __str__(self) -> str:
        return f"system identity: {self.user}"
