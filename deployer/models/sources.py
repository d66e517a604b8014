"""What the outside systems said: branches, builds, how fresh each is, integration health, webhook deliveries."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from deployer.choices import (
    BuildResult,
    SyncSource,
)
from deployer.models.catalog import Service


class RefHead(models.Model):
    """A named ref of a service's repository (a branch, a tag) and the commit it names, as last synced."""

    name = models.CharField(max_length=255)
    sha = models.CharField(max_length=40)
    author = models.CharField(max_length=255, blank=True)
    message = models.CharField(max_length=500, blank=True, help_text="First line of the head commit message.")
    committed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Branch(RefHead):
    """A branch of a service's repository and its head commit, as last synced."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="branches")

    class Meta:
        ordering = ["-committed_at", "name"]
        constraints = [models.UniqueConstraint(fields=["service", "name"], name="branch_unique_name")]

    def __str__(self) -> str:
        return f"{self.service.name}:{self.name}"


class Tag(RefHead):
    """A tag of a service's repository and the commit it names (peeled: an annotated tag's commit)."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="tags")

    class Meta:
        ordering = ["-committed_at", "-name"]
        constraints = [models.UniqueConstraint(fields=["service", "name"], name="tag_unique_name")]

    def __str__(self) -> str:
        return f"{self.service.name}:tags/{self.name}"


class BuildQuerySet(models.QuerySet["Build"]):
    def newest_of(self, service_ids: set[int], shas: set[str]) -> dict[tuple[int, str], Build]:
        """The newest build of each (service, sha) among `shas`, in one query."""
        newest: dict[tuple[int, str], Build] = {}
        if not shas:
            return newest
        # Filter by sha alone: SQLite picks a poor plan for "service IN (...) AND sha IN (...)".
        for build in self.filter(sha__in=shas).order_by("-started_at", "-number"):
            if build.service_id in service_ids:
                newest.setdefault((build.service_id, build.sha), build)
        return newest

    def newest_for(self, service_id: int, sha: str) -> Build | None:
        return self.newest_of({service_id}, {sha}).get((service_id, sha))


class Build(models.Model):
    """One CI build of a service (a Jenkins build, or a GitHub Actions run), as last synced: its sha and ending."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="builds")
    job = models.CharField(max_length=400, help_text="Jenkins job; for multibranch pipelines, job/branch.")
    number = models.PositiveIntegerField()
    branch = models.CharField(max_length=255, blank=True)
    sha = models.CharField(max_length=40, blank=True)
    result = models.CharField(max_length=20, choices=BuildResult.choices)
    started_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True)
    url = models.URLField(max_length=1000, blank=True)
    # A Pipeline replay: someone edited its script in Jenkins; it never counts where trusted_builds applies.
    replayed = models.BooleanField(default=False)
    run_id = models.PositiveBigIntegerField(null=True, blank=True, help_text="GitHub Actions: the run's id.")
    # GitHub Actions: the run's check suite, which its jobs' check runs name (sources/checks.py).
    suite_id = models.PositiveBigIntegerField(null=True, blank=True)

    objects = BuildQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-number"]
        constraints = [models.UniqueConstraint(fields=["service", "job", "number"], name="build_unique_number")]
        indexes = [models.Index(fields=["sha"], name="build_sha")]

    def __str__(self) -> str:
        return f"{self.job} #{self.number} ({self.result})"

    @property
    def result_choice(self) -> BuildResult:
        return BuildResult(self.result)

    @property
    def duration_s(self) -> float | None:
        return None if self.duration_ms is None else self.duration_ms / 1000

    @property
    def is_green(self) -> bool:
        return self.result == BuildResult.SUCCESS


class CommitChecks(models.Model):
    """What GitHub says about one commit of a service (ci: github with required checks): the newest check run
    or commit status per name and poster, as last read (sources/checks.py); the build gate combines them."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="commit_checks")
    sha = models.CharField(max_length=40)
    # [{name, kind: check|status, by: app slug or login, app_id, state: success|failure|pending, word, url, at}]
    contexts = models.JSONField(default=list, blank=True)
    etags = models.JSONField(default=dict, blank=True, help_text="ETag of the check runs and statuses answers.")
    read_at = models.DateTimeField(null=True, blank=True)
    # The branches this commit was the head of when its checks were read: where trusted_builds names branches,
    # a check other than a trusted workflow run's counts only for a commit that headed one of them.
    branches = models.JSONField(default=list, blank=True)
    stale = models.BooleanField(default=False, help_text="A webhook said its checks changed: read them again.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["service", "sha"], name="commitchecks_unique_sha")]

    def __str__(self) -> str:
        return f"{self.service.name} checks of {self.sha[:8]}"


class SyncState(models.Model):
    """How fresh a service's data from one source is: last success, last error, conditional-request state."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="sync_states")
    source = models.CharField(max_length=20, choices=SyncSource.choices)
    synced_at = models.DateTimeField(null=True, blank=True, help_text="Last successful sync.")
    attempted_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="Why the last attempt failed; empty after a success.")
    etags = models.JSONField(default=dict, blank=True, help_text="ETag of each page of the last answer.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["service", "source"], name="syncstate_unique_source")]

    def __str__(self) -> str:
        return f"{self.service.name} {self.source}"


class IntegrationStatus(models.Model):
    """The health of one outside system (github, jenkins) as seen by the workers."""

    name = models.CharField(max_length=20, unique=True)
    ok_at = models.DateTimeField(null=True, blank=True)
    error_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    paused_until = models.DateTimeField(null=True, blank=True, help_text="No calls before this (back-off).")
    rate_limit = models.PositiveIntegerField(null=True, blank=True)
    rate_remaining = models.PositiveIntegerField(null=True, blank=True)
    rate_reset = models.DateTimeField(null=True, blank=True)
    requests = models.PositiveBigIntegerField(default=0, help_text="Requests sent since the counters were reset.")

    def __str__(self) -> str:
        return self.name


class WebhookDelivery(models.Model):
    """A webhook as received: kept so duplicates are ignored and work survives a broker outage."""

    source = models.CharField(max_length=20)
    delivery_id = models.CharField(max_length=100)
    event = models.CharField(max_length=50)
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "delivery_id"], name="webhook_unique_delivery")]

    def __str__(self) -> str:
        return f"{self.source} {self.event} {self.delivery_id}"


class ChangeSet(models.Model):
    """What lies between two commits of a service: the commits `head` adds (newest first, the first 50), how
    many `base` has that `head` lacks, and the migration files among the changed ones. A worker with the
    repository computes it; pages only read it (the web machine has no git mirror)."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="change_sets")
    base = models.CharField(max_length=40)
    head = models.CharField(max_length=40)
    globs = models.JSONField(default=list, help_text="The migration globs the files were matched with.")
    requested_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    computed_at = models.DateTimeField(null=True, blank=True)
    ahead = models.IntegerField(null=True, blank=True)
    behind = models.IntegerField(default=0)
    commits = models.JSONField(default=list, blank=True)
    migrations = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    # Who first asked for it (a person's plan page): new change sets are throttled per person.
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["service", "base", "head"], name="change_set_one_per_range")]
        indexes = [models.Index(fields=["requested_by", "requested_at"], name="change_set_by_person")]

    def __str__(self) -> str:
        return f"{self.service_id}: {self.base[:8]}..{self.head[:8]}"


class MigrationCheck(models.Model):
    """The migration safety check of one commit (deploys/migration_check.py): run once per sha and way of
    checking, in a build's sandbox on the builder, for a person allowed to deploy it; every plan and deploy of
    the sha reads it. `findings` covers every migration file of the commit (a plan shows those it ships)."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="migration_checks")
    sha = models.CharField(max_length=40)
    inputs = models.CharField(max_length=64, help_text="What the check depends on besides the commit (its spec).")
    requested_at = models.DateTimeField()
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    files = models.JSONField(default=list, blank=True, help_text="The migration files checked.")
    findings = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True, help_text="Why the check could not run (then it counts as not passed).")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["service", "sha", "inputs"], name="migration_check_one_per_sha")]

    def __str__(self) -> str:
        return f"{self.service_id}: {self.sha[:8]}"


class ScheduledRound(models.Model):
    """When a periodic task last began a round. A round starts only by a conditional update of this row, so
    two schedulers running by mistake (two `celery beat`s) start each round once."""

    name = models.CharField(max_length=100, unique=True)
    started_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.started_at:%H:%M:%S}"
