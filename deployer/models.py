"""Gantry's data: the catalog (Team, Service, Environment, Host), what the
repository holds (Branch), and the audit record of every deploy (Deploy,
DeployHost, DeployLog)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from deployer.choices import BuildResult, DeployStatus, DeployTrigger, HostStatus, OnFailure, SyncSource


class Team(models.Model):
    """A group of people that owns services."""

    name = models.SlugField(max_length=100, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Service(models.Model):
    """One independently deployable service, as declared in catalog.yml."""

    name = models.SlugField(max_length=100, unique=True)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="services", null=True, blank=True)
    repo_url = models.CharField(
        max_length=500, help_text="Git URL or absolute path of the repository Gantry deploys from."
    )
    default_branch = models.CharField(max_length=255, default="main")
    github_repo = models.CharField(
        max_length=200, blank=True, help_text="owner/name on GitHub; branches then come from GitHub's API."
    )
    jenkins_job = models.CharField(max_length=255, blank=True, help_text="Jenkins job (folder/name) that builds it.")
    runbook_url = models.URLField(max_length=500, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Environment(models.Model):
    """Where a service runs (test, prod, ...): its hosts and how to roll out there."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="environments")
    name = models.SlugField(max_length=50)
    position = models.PositiveIntegerField(default=0, help_text="Order on the pages (catalog order).")
    deploy_path = models.CharField(max_length=500, help_text="Absolute directory on each host.")
    build_command = models.TextField(blank=True, help_text="Runs in the new release directory.")
    restart_command = models.TextField(blank=True, help_text="Runs in <deploy_path>/current after the switch.")
    health_check_url = models.CharField(
        max_length=500, blank=True, help_text="URL template polled until HTTP 200; {address} is the host."
    )
    health_check_timeout = models.PositiveIntegerField(default=30, validators=[MinValueValidator(1)])
    releases_to_keep = models.PositiveIntegerField(default=5, validators=[MinValueValidator(2)])
    command_timeout = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seconds one remote command may run; empty: GANTRY_SSH_COMMAND_TIMEOUT."
    )
    batch_size = models.CharField(
        max_length=10, default="1", help_text="Hosts switched at once: a number, or a percentage like 25%."
    )
    on_failure = models.CharField(max_length=20, choices=OnFailure.choices, default=OnFailure.ROLLBACK)
    production = models.BooleanField(default=False, help_text="Counts as production (gates, metrics).")
    require_green_build = models.BooleanField(
        default=False, help_text="Deploy only a sha whose Jenkins build succeeded."
    )
    follow_branch = models.CharField(
        max_length=255, blank=True, help_text="Continuous delivery: deploy this branch's head once its build is green."
    )
    # Drift: how many commits this environment's release is ahead of the next
    # environment's (test ahead of prod), computed by a worker after deploys.
    ahead_of_next = models.PositiveIntegerField(null=True, blank=True, editable=False)
    ahead_of_next_shas = models.CharField(max_length=82, blank=True, editable=False)  # "<sha>..<sha>"

    class Meta:
        ordering = ["service__name", "position", "name"]
        constraints = [models.UniqueConstraint(fields=["service", "name"], name="environment_unique_name")]

    def __str__(self) -> str:
        return f"{self.service.name}/{self.name}"


class Host(models.Model):
    """A machine Gantry reaches over SSH to install releases of one environment."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="hosts")
    address = models.CharField(max_length=255)
    port = models.PositiveIntegerField(default=22)
    user = models.CharField(max_length=64, default="deploy")
    deploy_path = models.CharField(
        max_length=500, blank=True, help_text="Overrides the environment's path (hosts that share a disk)."
    )
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "address", "port"]
        constraints = [models.UniqueConstraint(fields=["environment", "address", "port"], name="host_unique_address")]

    def __str__(self) -> str:
        return f"{self.user}@{self.address}:{self.port}"

    @property
    def path(self) -> str:
        return self.deploy_path or self.environment.deploy_path


class Branch(models.Model):
    """A branch of a service's repository and its head commit, as last synced."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="branches")
    name = models.CharField(max_length=255)
    sha = models.CharField(max_length=40)
    author = models.CharField(max_length=255, blank=True)
    message = models.CharField(max_length=500, blank=True, help_text="First line of the head commit message.")
    committed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-committed_at", "name"]
        constraints = [models.UniqueConstraint(fields=["service", "name"], name="branch_unique_name")]

    def __str__(self) -> str:
        return f"{self.service.name}:{self.name}"


class Build(models.Model):
    """One Jenkins build of a service, as last synced: which sha it built and how it ended."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="builds")
    job = models.CharField(max_length=400, help_text="Jenkins job; for multibranch pipelines, job/branch.")
    number = models.PositiveIntegerField()
    branch = models.CharField(max_length=255, blank=True)
    sha = models.CharField(max_length=40, blank=True)
    result = models.CharField(max_length=20, choices=BuildResult.choices)
    started_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True)
    url = models.URLField(max_length=1000, blank=True)

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


class DeployQuerySet(models.QuerySet["Deploy"]):
    def active(self) -> DeployQuerySet:
        return self.filter(status__in=DeployStatus.active())


class Deploy(models.Model):
    """The audit record of one deploy: created before anything runs, pins the
    exact sha, only ever moves forward through its states, never deleted."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="deploys")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="deploys"
    )
    ref = models.CharField(max_length=255, help_text="The branch (or sha) the person asked for.")
    sha = models.CharField(max_length=40, help_text="The commit that is deployed, pinned at request time.")
    previous_sha = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=20, choices=DeployStatus.choices, default=DeployStatus.QUEUED)
    trigger = models.CharField(max_length=20, choices=DeployTrigger.choices, default=DeployTrigger.MANUAL)
    reason = models.TextField(blank=True, help_text="Why the deploy ended as it did.")
    created_at = models.DateTimeField(auto_now_add=True)
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="When its job was last sent to the broker.")
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="The worker running it was alive then.")
    finished_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    log_lines_dropped = models.PositiveIntegerField(default=0)
    github_deployment_id = models.BigIntegerField(null=True, blank=True, editable=False)
    github_state = models.CharField(max_length=20, blank=True, editable=False, help_text="Last status sent to GitHub.")

    objects = DeployQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            # The database, not the code, guarantees one active deploy per environment.
            models.UniqueConstraint(
                fields=["environment"],
                condition=Q(status__in=sorted(DeployStatus.active())),
                name="deploy_one_active_per_environment",
            )
        ]

    def __str__(self) -> str:
        return f"deploy #{self.pk} of {self.environment} @ {self.sha[:8]}"

    @property
    def status_choice(self) -> DeployStatus:
        return DeployStatus(self.status)

    @property
    def is_active(self) -> bool:
        return self.status in DeployStatus.active()

    @property
    def duration(self) -> timedelta | None:
        if self.started_at is None:
            return None
        if self.finished_at is None:
            return None
        return self.finished_at - self.started_at


class DeployHost(models.Model):
    """What one deploy did on one host."""

    deploy = models.ForeignKey(Deploy, on_delete=models.CASCADE, related_name="hosts")
    host = models.ForeignKey(Host, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # Kept as text so the record stays readable after the host leaves the catalog.
    address = models.CharField(max_length=300)
    status = models.CharField(max_length=20, choices=HostStatus.choices, default=HostStatus.PENDING)
    release = models.CharField(max_length=50, blank=True)
    previous_release = models.CharField(max_length=50, blank=True)
    message = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.address} in deploy #{self.deploy_id}"

    @property
    def status_choice(self) -> HostStatus:
        return HostStatus(self.status)


class DeployLog(models.Model):
    """One line of a deploy's log; the id is the cursor the live page reads from."""

    deploy = models.ForeignKey(Deploy, on_delete=models.CASCADE, related_name="log_lines")
    at = models.DateTimeField()
    host = models.CharField(max_length=300, blank=True)
    level = models.CharField(max_length=10, default="info")
    message = models.TextField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.host} {self.message}"
