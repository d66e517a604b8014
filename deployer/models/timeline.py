"""One change timeline: the phases of a deploy (each batch, each canary analysis) and the Grafana annotations
that show deploys, phases and events on the dashboards people already watch (sent through an outbox)."""

from __future__ import annotations

from django.db import models

from deployer.models.deploys import Deploy


class DeployPhase(models.Model):
    """A stretch of a rollout: a batch being switched, or the canary being judged."""

    class Kind(models.TextChoices):
        BATCH = "batch", "a batch"
        ANALYSIS = "analysis", "a canary analysis"

    deploy = models.ForeignKey(Deploy, on_delete=models.CASCADE, related_name="phases")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    label = models.CharField(max_length=500, help_text='e.g. "batch 1 of 3: 127.0.0.2"')
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["started_at", "pk"]

    def __str__(self) -> str:
        return f"{self.label} (deploy #{self.deploy_id})"


class GrafanaAnnotation(models.Model):
    """One annotation Gantry owns in Grafana: a deploy's region (opened at its start, closed at its end), a
    phase's sub-region, or an event's point. Writers change the row and bump its version; a worker brings
    Grafana up to date (POST once, then PATCH), retried while Grafana is down."""

    class State(models.TextChoices):
        PENDING = "pending", "waiting to be sent"
        SENT = "sent", "sent"
        FAILED = "failed", "Grafana refused it"

    key = models.CharField(max_length=100, unique=True, help_text='"deploy-12", "phase-40", "audit-7"')
    deploy = models.ForeignKey(Deploy, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    time_ms = models.BigIntegerField(help_text="Its start, in milliseconds since the epoch (Grafana's time).")
    time_end_ms = models.BigIntegerField(help_text="Its end (equal to the start: a point).")
    tags = models.JSONField(default=list)
    text = models.TextField()
    grafana_id = models.BigIntegerField(null=True, blank=True, help_text="Grafana's id, once created.")
    version = models.PositiveIntegerField(default=1)
    sent_version = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="A worker is sending it (since).")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"annotation {self.key}"
