"""The audit record of every deploy (Deploy, with its hosts, log lines and shipped commits), and deploys
queued behind a lease."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from deployer.choices import (
    Decision,
    DeployStatus,
    DeployTrigger,
    HostStatus,
)
from deployer.models.catalog import Environment, Host, Service
from deployer.models.scrub import Scrubbed, ScrubbedQuerySet

LOG_TAIL_SECONDS = 20  # after its end, a deploy's page polls its log this long (pruning logs after the end)


class DeployQuerySet(ScrubbedQuerySet["Deploy"]):
    def active(self) -> DeployQuerySet:
        return self.filter(status__in=DeployStatus.active())


class Deploy(Scrubbed):
    """The audit record of one deploy: created before anything runs, pins the
    exact sha, only ever moves forward through its states, never deleted."""

    SCRUBBED = ("reason", "pause_reason")

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
    release_started_at = models.DateTimeField(
        null=True, blank=True, help_text="The release phase began (claimed: it runs once per deploy)."
    )
    release_ran_on = models.CharField(max_length=255, blank=True, help_text="The host that ran release_command.")
    config_definitions = models.JSONField(
        default=dict, blank=True, help_text="What each config key was made from (templates, never secret values)."
    )
    queue_waiting_since = models.DateTimeField(
        null=True, blank=True, help_text="The task queue was unreachable when it was to be sent; the reaper sends it."
    )
    commits_total = models.PositiveIntegerField(
        null=True, blank=True, help_text="How many commits it shipped (DeployCommit keeps the newest); null: unknown."
    )
    tests_file = models.JSONField(
        null=True,
        blank=True,
        help_text='Its commit\'s .gantry/tests.yml, read by its worker: {"text": ...} (null text: none), '
        '{"error": ...}; null: not read.',
    )
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="The worker running it was alive then.")
    # Hosts a person said to deploy without (a dead host), and why: their records say skipped, and they are
    # shown behind until a deploy reaches them.
    skipped_hosts = models.JSONField(default=list, blank=True, help_text="Addresses deployed without, on request.")
    skip_reason = models.CharField(max_length=500, blank=True)
    worker = models.CharField(
        max_length=200, blank=True, help_text="The worker that ran it (its Celery node name and pid), set at its claim."
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The cancel asked to stop the commands running on hosts now (a hung restart), not after them.
    cancel_stops_commands = models.BooleanField(default=False)
    # Schema-aware rollback (deployer/deploys/schema_changes.py): the migration files it ships, whether it ran
    # post_release_command, and for a rollback across such deploys what the person confirmed.
    migrations = models.JSONField(default=list, blank=True)
    # Built once (build: builder): the artifact's checksum, and the deploy that built it (itself, or an
    # earlier one whose artifact it reused: a promotion ships the identical bytes).
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    artifact_source = models.CharField(max_length=500, blank=True, help_text="Where it came from (Jenkins).")
    artifact_built_by = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    post_release_ran_at = models.DateTimeField(null=True, blank=True)
    rollback_confirmation = models.TextField(blank=True)
    # Set when the person confirmed deploying code that lacks migrations the environment has applied.
    schema_confirmation = models.TextField(blank=True)
    rollback_of = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text=(
            "For a rollback: the earlier deploy whose release (still on the hosts) it goes back to; for a join: the "
            "deploy whose release the new hosts get."
        ),
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    emergency_reason = models.TextField(blank=True, help_text="Set for an emergency deploy (skipped gates and locks).")
    lock_overridden = models.TextField(blank=True, help_text="The lock an admin deployed through, as it read then.")
    freeze_overridden = models.TextField(
        blank=True, help_text="The freeze window an admin deployed in, as it read then, and the admin's reason."
    )
    checklist = models.JSONField(default=list, blank=True, help_text="The checklist items ticked at request time.")
    eta_seconds = models.PositiveIntegerField(null=True, blank=True, help_text="Expected duration when requested.")
    # Guided failure: a paused rollout waits for a person's decision (written by deploys.deploy_decide).
    paused_at = models.DateTimeField(null=True, blank=True)
    pause_reason = models.TextField(blank=True)
    decision = models.CharField(max_length=10, choices=Decision.choices, blank=True)
    # The last sequence number its webhook events carry (notify/hooks_out.py): receivers order by it.
    hook_sequence = models.PositiveIntegerField(default=0, editable=False)
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
    def log_growing(self) -> bool:
        """Its log may still get lines: it runs, or it ended moments ago (old releases are pruned after the
        end is recorded, and say so in the log): a page keeps polling that long."""
        if self.is_active:
            return True
        return self.finished_at is not None and (timezone.now() - self.finished_at).total_seconds() < LOG_TAIL_SECONDS

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
    def is_join(self) -> bool:
        """Hosts new in the environment get the release that runs there: no new release, no release phase."""
        return self.trigger == DeployTrigger.JOIN

    @property
    def duration(self) -> timedelta | None:
        if self.started_at is None:
            return None
        if self.finished_at is None:
            return None
        return self.finished_at - self.started_at


class Artifact(models.Model):
    """A release built once on a builder host, kept there as <builder_path>/artifacts/<sha256>.tar.gz."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="artifacts")
    sha = models.CharField(max_length=40)
    inputs = models.CharField(max_length=64, help_text="sha256 of what the build depends on (commit, command).")
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    builder = models.CharField(max_length=600, help_text="user@address:port and path of the builder.")
    built_by = models.ForeignKey("Deploy", on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["service", "inputs", "builder"], name="artifact_unique_inputs")]

    def __str__(self) -> str:
        return f"{self.service.name} {self.sha[:12]} ({self.sha256[:12]})"


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


class DeployHost(Scrubbed):
    """What one deploy did on one host."""

    SCRUBBED = ("message", "roles")

    deploy = models.ForeignKey(Deploy, on_delete=models.CASCADE, related_name="hosts")
    host = models.ForeignKey(Host, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # Kept as text so the record stays readable after the host leaves the catalog.
    address = models.CharField(max_length=300)
    status = models.CharField(max_length=20, choices=HostStatus.choices, default=HostStatus.PENDING)
    release = models.CharField(max_length=50, blank=True)
    previous_release = models.CharField(max_length=50, blank=True)
    # Where `current` pointed when Gantry last read it on the host (after every switch, and after a failed
    # rollback): what the host really runs, whatever the deploy's state says. "" = never read.
    current = models.CharField(max_length=50, blank=True)
    message = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Each role this host runs and how its restart and health check went: [{"name", "state", "detail"}].
    roles = models.JSONField(default=list, blank=True)

    objects = ScrubbedQuerySet["DeployHost"].as_manager()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.address} in deploy #{self.deploy_id}"

    @property
    def status_choice(self) -> HostStatus:
        return HostStatus(self.status)


class DeployLog(Scrubbed):
    """One line of a deploy's log; the id is the cursor the live page reads from."""

    SCRUBBED = ("message",)

    deploy = models.ForeignKey(Deploy, on_delete=models.CASCADE, related_name="log_lines")
    at = models.DateTimeField()
    host = models.CharField(max_length=300, blank=True)
    level = models.CharField(max_length=10, default="info")
    message = models.TextField()

    objects = ScrubbedQuerySet["DeployLog"].as_manager()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.host} {self.message}"


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
