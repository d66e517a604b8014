"""What a canary analysis measured (deploys/analysis.py): every measurement, kept with its deploy."""

from __future__ import annotations

from django.db import models

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
