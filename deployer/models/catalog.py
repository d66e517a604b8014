"""The catalog: teams, services, their environments and hosts (catalog.yml, editable in the admin)."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from deployer.choices import (
    OnFailure,
)
from deployer.lib.redact import redacted
from deployer.lib.secrets import SecretSource
from deployer.models.scrub import Scrubbed, ScrubbedQuerySet


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
    ci = models.CharField(max_length=10, default="jenkins", help_text="Where its builds come from: jenkins or github.")
    github_actions = models.JSONField(default=dict, blank=True, help_text="ci: github: which runs and checks count.")
    # github_actions.branch_protection: the checks the default branch's protection requires, as last read
    # ([{context, app_id}]; sources/checks.py).
    protected_checks = models.JSONField(default=list, blank=True, editable=False)
    runbook_url = models.URLField(max_length=500, blank=True)
    api_tests = models.JSONField(default=dict, blank=True, help_text="Post-deploy API test suites (catalog).")
    # {"prometheus", "objective", "window", "good", "total" | "sloth", "gate"}: deploys/error_budget.py.
    slo = models.JSONField(default=dict, blank=True)
    # Globs of its migration files (deployer/deploys/schema_changes.py); null: the common frameworks' layouts.
    migrations = models.JSONField(null=True, blank=True, help_text="Globs of its migration files.")
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


class Environment(Scrubbed):
    """Where a service runs (test, prod, ...): its hosts and how to roll out there."""

    SCRUBBED = ("lock_reason",)
    objects = ScrubbedQuerySet["Environment"].as_manager()

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="environments")
    name = models.SlugField(max_length=50)
    position = models.PositiveIntegerField(default=0, help_text="Order on the pages (catalog order).")
    deploy_path = models.CharField(max_length=500, help_text="Absolute directory on each host.")
    build_command = models.TextField(blank=True, help_text="Runs in the new release directory.")
    # Where the release is built (deployer/deploys/builder.py): on every host, or once on a builder host.
    build_mode = models.CharField(max_length=20, default="hosts", help_text="hosts, builder, jenkins or github.")
    jenkins_artifact = models.CharField(max_length=200, default="*.tar.gz", help_text="build: jenkins ships it.")
    github_artifact = models.CharField(max_length=200, default="release", help_text="build: github: artifact name.")
    builder_address = models.CharField(max_length=255, blank=True)
    builder_port = models.PositiveIntegerField(default=22)
    builder_user = models.CharField(max_length=64, blank=True)
    builder_path = models.CharField(max_length=500, blank=True, help_text="Where the builder builds and keeps.")
    # How one build is kept from every other (deployer/deploys/builder.py): a bubblewrap sandbox per build,
    # or a builder account used only by environments of one trust level.
    builder_isolation = models.CharField(max_length=20, default="sandbox", help_text="sandbox or account.")
    # {"key": [files], "dirs": [dirs]}: the dependency cache of its builds on the builder (build_cache.py).
    build_cache = models.JSONField(default=dict, blank=True)
    # {"recipe": "django", ...}: the migration safety check run in the build's sandbox (migration_check.py).
    migration_check = models.JSONField(default=dict, blank=True)
    # {"prometheus": "main", "metrics": [...]}: the canary's analysis between batches (deploys/analysis.py).
    analysis = models.JSONField(default=dict, blank=True)
    # [{"reason", "from", "until"} | {"reason", "cron", "duration", "timezone"}]: no deploys then (freezes.py).
    freeze = models.JSONField(default=list, blank=True)
    webhooks = models.JSONField(default=list, blank=True, help_text="Where its events are POSTed (catalog).")
    proxy_jump = models.JSONField(default=list, blank=True, help_text="Jump hosts: user@host:port, in order.")
    # The release model (deployer/deploys/host_steps.py, config.py): what is shared across releases, the
    # settings Gantry writes, and the commands that run once per deploy.
    shared_files = models.JSONField(default=list, blank=True, help_text="Linked from shared/ into each release.")
    shared_dirs = models.JSONField(default=list, blank=True, help_text="Linked from shared/ (created if missing).")
    config = models.JSONField(default=dict, blank=True, help_text="KEY: value written to shared/<config_file>.")
    config_file = models.CharField(max_length=200, default=".env")
    config_secrets = models.JSONField(default=list, blank=True, help_text="Secrets config may use here.")
    # Where this environment's secret values come from, read at every deploy (deployer/lib/secrets.py):
    # a file, a command, or (neither) the workers' GANTRY_SECRET_* variables. Values are never stored;
    # secret_fingerprints keeps a keyed digest per name, to audit a change (never the value).
    # The Jenkins builds that count here (gate and build: jenkins artifact): globs of job and branch; empty
    # means any. The catalog fills branches with the default branch for production unless it says otherwise.
    trusted_build_jobs = models.JSONField(default=list, blank=True)
    trusted_build_branches = models.JSONField(default=list, blank=True)
    secrets_file = models.CharField(max_length=500, blank=True, help_text="NAME=value lines, mode 0600.")
    secrets_command = models.JSONField(default=list, blank=True, help_text="argv printing NAME=value lines or JSON.")
    secrets_shared_with_production = models.JSONField(
        default=list, blank=True, help_text="Secrets this non-production environment may share with production."
    )
    secret_fingerprints = models.JSONField(default=dict, blank=True, editable=False)
    # A production environment's values as keyed digests of the value alone (secret_scope.py): a
    # non-production environment holding one is refused even when production reads its values by a command,
    # which no other environment's deploy runs.
    secret_value_digests = models.JSONField(default=list, blank=True, editable=False)
    release_command = models.TextField(blank=True, help_text="Once per deploy, after staging, before any switch.")
    release_host = models.CharField(max_length=255, blank=True, help_text="Where it runs (default: the first host).")
    post_release_command = models.TextField(blank=True, help_text="Once, after every host is live.")
    strict_commands = models.BooleanField(default=True, help_text="Commands run under set -eu.")
    restart_timeout = models.PositiveIntegerField(default=120, help_text="Seconds a restart may run.")
    restart_command = models.TextField(blank=True, help_text="Runs in <deploy_path>/current after the switch.")
    healthy_for = models.PositiveIntegerField(default=0, help_text="Seconds a health check must keep passing.")
    health_check_url = models.CharField(
        max_length=500, blank=True, help_text="URL template polled until HTTP 200; {address} is the host."
    )
    health_check_command = models.TextField(blank=True, help_text="Run in current until it exits 0.")
    health_check = models.CharField(
        max_length=10, blank=True, help_text='"none": no health check, on purpose (production refuses one without).'
    )
    # Process roles (deployer/deploys/roles.py): [{"name": "web", "restart_command": ..., "order": 0, ...}] in
    # catalog order; empty: one role made of the environment's own restart_command and health checks.
    roles = models.JSONField(default=list, blank=True, help_text="Process roles and their commands.")
    hooks = models.JSONField(default=dict, blank=True, help_text="Commands at a deploy's phases.")
    health_check_timeout = models.PositiveIntegerField(default=30, validators=[MinValueValidator(1)])
    releases_to_keep = models.PositiveIntegerField(default=5, validators=[MinValueValidator(2)])
    command_timeout = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seconds one remote command may run; empty: GANTRY_SSH_COMMAND_TIMEOUT."
    )
    batch_size = models.CharField(
        max_length=10, default="1", help_text="Hosts switched at once: a number, or a percentage like 25%."
    )
    on_failure = models.CharField(max_length=20, choices=OnFailure.choices, default=OnFailure.ROLLBACK)
    unreachable_hosts = models.PositiveIntegerField(
        default=0, help_text="Hosts that may be unreachable when a deploy starts (it goes on without them)."
    )
    production = models.BooleanField(default=False, help_text="Counts as production (gates, metrics).")
    require_green_build = models.BooleanField(
        default=False, help_text="Deploy only a sha whose Jenkins build succeeded."
    )
    follow_branch = models.CharField(
        max_length=255, blank=True, help_text="Continuous delivery: deploy this branch's head once its build is green."
    )
    follow_tags = models.CharField(
        max_length=100, blank=True, help_text="Continuous delivery: the newest tag matching this glob, once green."
    )
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
    monitor_claimed_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When the last scheduled API test run was claimed."
    )
    lease_minutes = models.PositiveIntegerField(
        default=0, help_text="A shared test environment: a deploy claims it this long (0: no leases)."
    )
    leased_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, editable=False, related_name="+"
    )
    lease_ref = models.CharField(max_length=255, blank=True, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Drift: how many commits this environment's release is ahead of the next
    # environment's (test ahead of prod), computed by a worker after deploys.
    ahead_of_next = models.PositiveIntegerField(null=True, blank=True, editable=False)
    ahead_of_next_shas = models.CharField(max_length=82, blank=True, editable=False)  # "<sha>..<sha>"

    class Meta:
        ordering = ["service__name", "position", "name"]
        constraints = [models.UniqueConstraint(fields=["service", "name"], name="environment_unique_name")]

    def __str__(self) -> str:
        return f"{self.service.name}/{self.name}"

    @property
    def secret_source(self) -> SecretSource:
        return SecretSource(file=self.secrets_file, command=tuple(self.secrets_command or ()))

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
    roles = models.JSONField(default=list, blank=True, help_text="The roles it runs (empty: every role).")
    proxy_jump = models.JSONField(default=list, blank=True, help_text="Jump hosts it is reached through, in order.")

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


class CatalogState(models.Model):
    """The catalog in git (GANTRY_CATALOG_REPO): one row. What was applied, what was seen and refused, and
    who pushed the newest commit (from GitHub's signed push webhook, not the commit's free-text author)."""

    applied_sha = models.CharField(max_length=40, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    seen_sha = models.CharField(max_length=40, blank=True, help_text="The newest commit read (applied or not).")
    checked_at = models.DateTimeField(null=True, blank=True)
    problems = models.TextField(blank=True, help_text="Why seen_sha was not applied (file:line each).")
    error = models.TextField(blank=True, help_text="Why the repository could not be read at the last check.")
    pushed_sha = models.CharField(max_length=40, blank=True)
    pushed_by = models.CharField(max_length=100, blank=True)

    def __str__(self) -> str:
        return f"catalog at {self.applied_sha[:12] or 'nothing applied'}"

    @classmethod
    def get(cls) -> CatalogState:
        state, _ = cls.objects.get_or_create(pk=1)
        return state
