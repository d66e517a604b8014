"""Gantry's data: the catalog (Team, Service, Environment, Host), what the
repository holds (Branch), and the audit record of every deploy (Deploy,
DeployHost, DeployLog)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from deployer.choices import (
    AuditAction,
    BuildResult,
    Decision,
    DeployStatus,
    DeployTrigger,
    HostStatus,
    OnFailure,
    Role,
    SyncSource,
)
from deployer.lib.redact import redacted


class Team(models.Model):
    """A group of people that owns services."""

    name = models.SlugField(max_length=100, unique=True)
    slack_channel = models.CharField(
        max_length=100, blank=True, help_text="Where its deploys are told: a channel id (C0123) or #name."
    )
    slack_group = models.CharField(
        max_length=30, blank=True, help_text="Slack user group (S0123) mentioned when its deploy's tests fail."
    )

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
    api_tests = models.JSONField(default=dict, blank=True, help_text="Post-deploy API test suites (catalog).")
    # When someone last pressed Refresh (a second press soon after is answered, not queued): deployer.freshness.
    refresh_requested_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def repo_shown(self) -> str:
        """The repository URL as pages may show it (no credentials)."""
        return redacted(self.repo_url)


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
    commit_warning = models.PositiveIntegerField(
        default=25, help_text="The plan warns when a deploy ships more commits than this."
    )
    lb_runtime_api = models.CharField(
        max_length=300, blank=True, help_text="HAProxy runtime API (socket path or host:port); empty: no balancer."
    )
    lb_backend = models.CharField(max_length=100, blank=True)
    lb_drain_timeout = models.PositiveIntegerField(
        default=30, help_text="Seconds to wait for a drained host's sessions."
    )
    require_approval = models.BooleanField(
        default=False, help_text="A second person must approve each deploy before it runs."
    )
    checklist = models.JSONField(default=list, blank=True, help_text="Items to tick before a deploy starts.")
    # The lock, if any (its history is in the audit log). Written only by deployer.locks.
    locked_at = models.DateTimeField(null=True, blank=True, editable=False)
    locked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, editable=False, related_name="+"
    )
    lock_reason = models.TextField(blank=True, editable=False)
    lock_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    base_url = models.CharField(max_length=500, blank=True, help_text="Where API tests reach the environment.")
    host_base_url = models.CharField(max_length=500, blank=True, help_text="Where API tests reach one host.")
    test_variables = models.JSONField(default=dict, blank=True)
    # What the API tests here may use and reach (a suite can come from any branch): deployer.apitest_runs.
    api_test_secrets = models.JSONField(
        default=list, blank=True, help_text="Names of the secrets (GANTRY_SECRET_<NAME> on the workers) tests may use."
    )
    api_test_repo_secrets = models.BooleanField(
        default=False, help_text="Suites from the repository (.gantry/tests.yml) may use those secrets too."
    )
    api_test_origins = models.JSONField(
        default=list, blank=True, help_text="Origins tests may call besides those of base_url and host_base_url."
    )
    rollback_on_tests_failed = models.BooleanField(default=False)
    monitor_minutes = models.PositiveIntegerField(
        default=0, help_text="Run the API test suites here every this many minutes (0: only after deploys)."
    )
    lease_minutes = models.PositiveIntegerField(
        default=0, help_text="A shared test environment: a deploy claims it this long (0: no leases)."
    )
    leased_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, editable=False, related_name="+"
    )
    lease_ref = models.CharField(max_length=255, blank=True, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    ahead_of_next = models.PositiveIntegerField(null=True, blank=True, editable=False)
    ahead_of_next_shas = models.CharField(max_length=82, blank=True, editable=False)  # "<sha>..<sha>"

    class Meta:
        ordering = ["service__name", "position", "name"]
        constraints = [models.UniqueConstraint(fields=["service", "name"], name="environment_unique_name")]

    def __str__(self) -> str:
        return f"{self.service.name}/{self.name}"

    @property
    def is_leased(self) -> bool:
        """Someone's lease runs now (it ends by itself at its expiry)."""
        return bool(self.leased_by_id and self.lease_expires_at and self.lease_expires_at > timezone.now())

    @property
    def is_locked(self) -> bool:
        """Locked now: a lock past its expiry no longer counts (it needs no sweep to end)."""
        if self.locked_at is None:
            return False
        return self.lock_expires_at is None or self.lock_expires_at > timezone.now()


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
    lb_server = models.CharField(max_length=100, blank=True, help_text="Server name in the HAProxy backend.")

    class Meta:
        ordering = ["position", "address", "port"]
        constraints = [models.UniqueConstraint(fields=["environment", "address", "port"], name="host_unique_address")]

    def __str__(self) -> str:
        return f"{self.user}@{self.address}:{self.port}"

    @property
    def path(self) -> str:
        return self.deploy_path or self.environment.deploy_path

    @property
    def balancer_name(self) -> str:
        """Its server name in the environment's HAProxy backend."""
        return self.lb_server or self.address


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
    queue_waiting_since = models.DateTimeField(
        null=True, blank=True, help_text="The task queue was unreachable when it was to be sent; the reaper sends it."
    )
    commits_total = models.PositiveIntegerField(
        null=True, blank=True, help_text="How many commits it shipped (DeployCommit keeps the newest); null: unknown."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="The worker running it was alive then.")
    finished_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    rollback_of = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="For a rollback: the earlier deploy whose release (still on the hosts) it goes back to.",
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    emergency_reason = models.TextField(blank=True, help_text="Set for an emergency deploy (skipped gates and locks).")
    lock_overridden = models.TextField(blank=True, help_text="The lock an admin deployed through, as it read then.")
    checklist = models.JSONField(default=list, blank=True, help_text="The checklist items ticked at request time.")
    eta_seconds = models.PositiveIntegerField(null=True, blank=True, help_text="Expected duration when requested.")
    # Guided failure: a paused rollout waits for a person's decision (written by deploys.deploy_decide).
    paused_at = models.DateTimeField(null=True, blank=True)
    pause_reason = models.TextField(blank=True)
    decision = models.CharField(max_length=10, choices=Decision.choices, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    log_lines_dropped = models.PositiveIntegerField(default=0)
    github_deployment_id = models.BigIntegerField(null=True, blank=True, editable=False)
    github_state = models.CharField(max_length=20, blank=True, editable=False, help_text="Last status sent to GitHub.")
    github_claimed_at = models.DateTimeField(null=True, blank=True, editable=False)

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
    def waits_for_queue(self) -> bool:
        """Queued, and not yet handed to the task queue (it was unreachable); the reaper sends it."""
        return self.queue_waiting_since is not None and self.status == "queued"

    @property
    def status_choice(self) -> DeployStatus:
        return DeployStatus(self.status)

    @property
    def is_active(self) -> bool:
        return self.status in DeployStatus.active()

    @property
    def elapsed_seconds(self) -> int:
        """Seconds since it started (0 before), for the progress against its ETA."""
        return round((timezone.now() - self.started_at).total_seconds()) if self.started_at else 0

    @property
    def release_name(self) -> str:
        """The directory under releases/ this deploy runs: its own, or for a rollback the earlier one's."""
        return str(self.rollback_of_id or self.pk)

    @property
    def is_rollback(self) -> bool:
        return self.trigger == DeployTrigger.ROLLBACK

    @property
    def duration(self) -> timedelta | None:
        if self.started_at is None:
            return None
        if self.finished_at is None:
            return None
        return self.finished_at - self.started_at


class DeployCommit(models.Model):
    """A commit a deploy shipped (from the previous sha to its sha), read from the repository by the
    worker when the deploy ended: the deploy page lists them; lead time is measured from them."""

    deploy = models.ForeignKey(Deploy, on_delete=models.CASCADE, related_name="commits")
    position = models.PositiveIntegerField(help_text="0 is the newest.")
    sha = models.CharField(max_length=40)
    author = models.CharField(max_length=200)
    email = models.CharField(max_length=254, blank=True)
    subject = models.CharField(max_length=300)
    committed_at = models.DateTimeField()

    class Meta:
        ordering = ["deploy", "position"]
        constraints = [models.UniqueConstraint(fields=["deploy", "sha"], name="deploycommit_unique_sha")]

    def __str__(self) -> str:
        return f"{self.sha[:8]} {self.subject}"


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


class SystemIdentity(models.Model):
    """Marks the one account Gantry acts as on its own (continuous delivery): the flag, not the name,
    makes it the system (a person who signs up as "gantry" is a person)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    def __str__(self) -> str:
        return f"system identity: {self.user}"


class AuditQuerySet(models.QuerySet["AuditEntry"]):
    # The audit log is append-only: bulk changes are refused like single ones.
    def update(self, **kwargs: object) -> int:
        raise PermissionError("audit entries cannot be changed")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise PermissionError("audit entries cannot be deleted")


class AuditEntry(models.Model):
    """Who did what to which deploy or environment, and why. Append-only; names
    are kept as text so an entry outlives the user, service or environment."""

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
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise PermissionError("audit entries cannot be deleted")

    @property
    def outcome_choice(self) -> DeployStatus:
        return DeployStatus(self.outcome)


class LeaseRequest(models.Model):
    """A deploy someone queued behind another person's lease; requested when the lease ends."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="lease_requests")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    ref = models.CharField(max_length=255)
    checklist = models.JSONField(default=list, blank=True, help_text="The checklist items ticked when queueing.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["environment", "user"], name="lease_request_one_per_person")]

    def __str__(self) -> str:
        return f"{self.user} waits to deploy {self.ref} to {self.environment}"


class SlackMessage(models.Model):
    """A Slack message Gantry owns, sent through this outbox: a deploy's story (posted once, then
    updated in place) or a reply in its thread. Deploys only write rows here; workers send them."""

    class Kind(models.TextChoices):
        STORY = "story", "the deploy's message"
        REPLY = "reply", "a reply in its thread"

    class State(models.TextChoices):
        PENDING = "pending", "waiting to be sent"
        SENT = "sent", "sent"
        FAILED = "failed", "Slack refused it"
        LOGGED = "logged", "no Slack token: logged instead"

    deploy = models.ForeignKey(Deploy, on_delete=models.CASCADE, related_name="slack_messages")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.STORY)
    channel = models.CharField(max_length=100)
    ts = models.CharField(max_length=30, blank=True, help_text="Slack's id of the message, once posted.")
    text = models.TextField(help_text="The notification text (and what is logged without a token).")
    blocks = models.JSONField(default=list, blank=True)
    version = models.PositiveIntegerField(default=1, help_text="Bumped by every change to text or blocks.")
    sent_version = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="A worker is sending it (since).")
    last_sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["deploy"], condition=Q(kind="story"), name="slack_one_story_per_deploy")
        ]

    def __str__(self) -> str:
        return f"{self.kind} of deploy #{self.deploy_id} in {self.channel} ({self.state})"


class SlackAttempt(models.Model):
    """Every call Gantry made to Slack for a message, and Slack's answer."""

    message = models.ForeignKey(SlackMessage, on_delete=models.CASCADE, related_name="attempts_made")
    at = models.DateTimeField(auto_now_add=True)
    method = models.CharField(max_length=30)
    version = models.PositiveIntegerField()
    ok = models.BooleanField()
    answer = models.CharField(max_length=300, blank=True, help_text="Slack's error code, or what went wrong.")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.method} v{self.version}: {'ok' if self.ok else self.answer}"


class SlackIdentity(models.Model):
    """Which Gantry user a Slack user is (matched by the e-mail of their Slack profile).

    Looked up once and kept for SLACK_IDENTITY_SECONDS, so a ChatOps request
    costs no Slack call; an admin may also set `user` by hand (then `pinned`).
    """

    slack_user_id = models.CharField(max_length=30, unique=True)
    slack_name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(blank=True, help_text="The e-mail of the Slack profile when last looked up.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="slack_identities"
    )
    pinned = models.BooleanField(default=False, help_text="Set by an admin: never replaced by a lookup.")
    checked_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "Slack identities"

    def __str__(self) -> str:
        return f"{self.slack_user_id} ({self.slack_name}) → {self.user or 'nobody'}"


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
