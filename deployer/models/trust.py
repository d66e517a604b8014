"""The hosts Gantry trusts: their SSH keys, kept where every machine reads them."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class TrustedHostKey(models.Model):
    """A host key Gantry trusts. Every worker reads these before it connects, so a key trusted on any machine
    holds on all of them (a known_hosts file is only an import and an export). Who trusted it, and when, is
    here and in the audit log."""

    host = models.CharField(max_length=300, help_text='As known_hosts names it: "10.0.0.5" or "[10.0.0.5]:2222".')
    key_type = models.CharField(max_length=100)
    key = models.TextField(help_text="The public key, base64, as in known_hosts.")
    fingerprint = models.CharField(max_length=100)
    trusted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    trusted_by_name = models.CharField(max_length=150)
    trusted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["host", "key_type"]
        constraints = [models.UniqueConstraint(fields=["host", "key_type"], name="trusted_host_key_one_per_type")]

    def __str__(self) -> str:
        return f"{self.host} {self.key_type} {self.fingerprint}"


class OfferedHostKey(models.Model):
    """A key a host showed that Gantry does not trust (a new host, or one rebuilt with a new key), kept so the
    service page can show it next to the trusted one for a person to check and trust. Never trusted by itself."""

    host = models.CharField(max_length=300, help_text='As known_hosts names it: "10.0.0.5" or "[10.0.0.5]:2222".')
    key_type = models.CharField(max_length=100)
    key = models.TextField(help_text="The public key, base64, as in known_hosts.")
    fingerprint = models.CharField(max_length=100)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["host", "-last_seen_at"]
        constraints = [models.UniqueConstraint(fields=["host", "key_type", "key"], name="offered_host_key_once")]

    def __str__(self) -> str:
        return f"{self.host} offered {self.key_type} {self.fingerprint}"
