"""What Prometheus told Gantry: what a canary analysis measured (deploys/analysis.py), every measurement kept
with its deploy; and each service's error budget (deploys/error_budget.py)."""

from __future__ import annotations

from django.db import models

from deployer.models.catalog import Service
from deployer.models.deploys import Deploy


class Measurement(models.Model):
    """One measurement of one metric: the queries as sent, the canary's and the baseline's values and
    samples (None: no data, never 0), and its verdict."""

    class Verdict(models.TextChoices):
        PASS = "pass", "pass"
        FAIL = "fail", "fail"
        INCONCLUSIVE = "inconclusive", "inconclusive"

    deploy = models.ForeignKey(Deploy, on_delete=models.CASCADE, related_name="measurements")
    metric = models.CharField(max_length=50)
    number = models.PositiveIntegerField(help_text="1 for the first measurement of this metric.")
    canary_query = models.TextField()
    baseline_query = models.TextField(blank=True)
    canary = models.FloatField(null=True, blank=True)
    baseline = models.FloatField(null=True, blank=True)
    canary_sample = models.FloatField(null=True, blank=True)
    baseline_sample = models.FloatField(null=True, blank=True)
    condition = models.CharField(max_length=200)
    verdict = models.CharField(max_length=20, choices=Verdict.choices)
    dry_run = models.BooleanField(default=False)
    said = models.CharField(max_length=500, blank=True, help_text="Why it is inconclusive, or what it compared.")
    measured_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.metric} #{self.number}: {self.verdict}"


class BudgetReading(models.Model):
    """A service's error budget as Prometheus last told it (deploys/error_budget.py, every minute)."""

    service = models.OneToOneField(Service, on_delete=models.CASCADE, related_name="budget")
    remaining = models.FloatField(null=True, blank=True, help_text="Share of the window's budget left (1: all).")
    burn_rates = models.JSONField(default=dict, blank=True, help_text='{"5m": 0.4, "1h": 0.2, ...}')
    fast_burn = models.BooleanField(default=False, help_text="1h and 5m both above 14.4")
    slow_burn = models.BooleanField(default=False, help_text="6h and 30m both above 6")
    error = models.TextField(blank=True, help_text="Why it could not be read this time (the figures are older).")
    read_at = models.DateTimeField(null=True, blank=True, help_text="When the figures were read.")
    checked_at = models.DateTimeField(help_text="When Gantry last asked.")

    def __str__(self) -> str:
        return f"error budget of {self.service_id}"
