"""Post-deploy API test runs and their steps, as stored (masked and capped)."""

from __future__ import annotations

from django.db import models

from deployer.models.catalog import Environment
from deployer.models.deploys import Deploy


class ApiTestRun(models.Model):
    """One run of one API test suite against an environment (or one of its hosts)."""

    class Trigger(models.TextChoices):
        DEPLOY = "deploy", "after a deploy"
        SCHEDULE = "schedule", "on schedule"
        MANUAL = "manual", "on demand"

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="api_test_runs")
    deploy = models.ForeignKey(Deploy, on_delete=models.CASCADE, null=True, blank=True, related_name="api_test_runs")
    suite = models.CharField(max_length=50)
    target = models.CharField(max_length=300, help_text="'environment' or a host address")
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.DEPLOY)
    started_at = models.DateTimeField(auto_now_add=True)
    ok = models.BooleanField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.suite} on {self.environment} ({'passed' if self.ok else 'failed'})"


class ApiTestStep(models.Model):
    run = models.ForeignKey(ApiTestRun, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    method = models.CharField(max_length=10, blank=True)
    url = models.TextField(blank=True)
    status = models.PositiveIntegerField(null=True, blank=True)
    elapsed_ms = models.PositiveIntegerField(null=True, blank=True)
    ok = models.BooleanField()
    error = models.TextField(blank=True)
    assertions = models.JSONField(default=list, help_text="[{what, ok, expected, actual}], failed first")
    response_excerpt = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "position"]

    def __str__(self) -> str:
        return f"{self.name}: {'ok' if self.ok else 'failed'}"
