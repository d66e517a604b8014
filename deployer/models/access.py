"""Who may do what: grants (per team, service or everywhere) and the flag on Gantry's own account."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from deployer.choices import Role, TokenScope
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


class PersonalToken(models.Model):
    """What a personal API token (knox's AuthToken: only its digest is kept) may do, and where it was last
    used. A token without one is a legacy token (made by `manage.py api_token` or the admin before)."""

    token = models.OneToOneField("knox.AuthToken", on_delete=models.CASCADE, primary_key=True, related_name="scope")
    name = models.CharField(max_length=100, help_text="What the person called it (which job or laptop holds it).")
    scope = models.CharField(max_length=10, choices=TokenScope.choices)
    targets = models.JSONField(default=list, blank=True, help_text='"service" or "service/environment" names.')
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_from = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.scope})"


class ExternalIdentity(models.Model):
    """Who a person is at the team's identity provider: its issuer and their subject (`sub`), the one key a
    sign-in is matched on (an e-mail can be reused or unverified; a name can be chosen by anyone)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identities")
    issuer = models.CharField(max_length=300)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    checked_at = models.DateTimeField(
        null=True, blank=True, help_text="When the provider last said who this is and in which groups (a sign-in)."
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="one_account_per_identity")]

    def __str__(self) -> str:
        return f"{self.user} at {self.issuer}"
