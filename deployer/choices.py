"""Gantry's status vocabulary: every deploy and host state, its colour and its group."""

from __future__ import annotations

from django.db import models


class DeployStatus(models.TextChoices):
    AWAITING_APPROVAL = "awaiting_approval", "awaiting approval"
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"
    CANCELLED = "cancelled", "cancelled"
    ROLLED_BACK = "rolled_back", "rolled back"
    INTERRUPTED = "interrupted", "interrupted"
    TESTS_FAILED = "tests_failed", "tests failed"
    JOINED = "joined", "joined"  # new hosts caught up to what runs there (a join deploy): not a new release

    @classmethod
    def active(cls) -> frozenset[str]:
        """States that hold the environment: at most one such deploy per environment."""
        return frozenset({cls.AWAITING_APPROVAL, cls.QUEUED, cls.RUNNING})

    @classmethod
    def live(cls) -> frozenset[str]:
        """The deploy's release went live on every host (tests_failed: and then its API tests failed)."""
        return frozenset({cls.SUCCEEDED, cls.TESTS_FAILED})

    @classmethod
    def finished(cls) -> frozenset[str]:
        return frozenset(
            {cls.SUCCEEDED, cls.FAILED, cls.CANCELLED, cls.ROLLED_BACK, cls.INTERRUPTED, cls.TESTS_FAILED, cls.JOINED}
        )

    @property
    def colour(self) -> str:
        return _DEPLOY_COLOURS[self]


_DEPLOY_COLOURS = {
    DeployStatus.AWAITING_APPROVAL: "amber",
    DeployStatus.QUEUED: "grey",
    DeployStatus.RUNNING: "blue",
    DeployStatus.SUCCEEDED: "green",
    DeployStatus.FAILED: "red",
    DeployStatus.CANCELLED: "grey",
    DeployStatus.ROLLED_BACK: "amber",
    DeployStatus.INTERRUPTED: "red",
    DeployStatus.TESTS_FAILED: "red",
    DeployStatus.JOINED: "green",
}


class HostStatus(models.TextChoices):
    PENDING = "pending", "pending"
    STAGED = "staged", "staged"
    ACTIVATING = "activating", "activating"
    LIVE = "live", "live"
    FAILED = "failed", "failed"
    ROLLED_BACK = "rolled_back", "rolled back"
    SKIPPED = "skipped", "skipped"
    STOPPED = "stopped", "stopped"  # a command of it was stopped on request (a cancel's "stop now")

    @classmethod
    def needs_attention(cls) -> frozenset[str]:
        """States a host can be left in by a worker that died: it may be half switched or restarted."""
        return frozenset({cls.ACTIVATING, cls.FAILED, cls.STOPPED})

    @property
    def colour(self) -> str:
        return _HOST_COLOURS[self]


_HOST_COLOURS = {
    HostStatus.PENDING: "grey",
    HostStatus.STAGED: "blue",
    HostStatus.ACTIVATING: "amber",
    HostStatus.LIVE: "green",
    HostStatus.FAILED: "red",
    HostStatus.ROLLED_BACK: "amber",
    HostStatus.SKIPPED: "grey",
    HostStatus.STOPPED: "red",
}


class OnFailure(models.TextChoices):
    """What a rollout does when a host fails."""

    ROLLBACK = "rollback", "roll the switched hosts back"
    STOP = "stop", "stop and leave the hosts as they are"
    PAUSE = "pause", "pause and let a person retry the host, skip it, or abort and roll back"


class Decision(models.TextChoices):
    """What a person chose for a paused deploy (guided failure)."""

    RETRY = "retry", "retry the failed hosts"
    SKIP = "skip", "skip the failed hosts"
    ABORT = "abort", "abort and roll back"


class Role(models.TextChoices):
    """What a grant lets its holder do, within its team or service (or everywhere)."""

    DEPLOYER = "deployer", "deploy to non-production environments"
    PROD_DEPLOYER = "prod_deployer", "deploy to production (and non-production)"
    APPROVER = "approver", "approve production deploys"


class AuditAction(models.TextChoices):
    DEPLOY_REQUESTED = "deploy_requested", "requested a deploy"
    EMERGENCY_DEPLOY = "emergency_deploy", "made an emergency deploy"
    LOCK_OVERRIDDEN = "lock_overridden", "deployed through a lock"
    APPROVED = "approved", "approved a deploy"
    REJECTED = "rejected", "rejected a deploy"
    CANCELLED = "cancelled", "cancelled a deploy"
    ROLLBACK_REQUESTED = "rollback_requested", "requested a rollback"
    LOCKED = "locked", "locked an environment"
    UNLOCKED = "unlocked", "unlocked an environment"
    MARKED_FAILED = "marked_failed", "marked a stuck deploy failed"
    LEASE_TAKEN = "lease_taken", "took a lease"
    LEASE_TAKEN_OVER = "lease_taken_over", "took over someone's lease"
    LEASE_RELEASED = "lease_released", "released a lease"
    LEASE_QUEUED = "lease_queued", "queued behind a lease"
    DECIDED = "decided", "chose what a paused deploy does"
    DEPLOY_ENDED = "deploy_ended", "deploy ended"
    HOST_KEY_TRUSTED = "host_key_trusted", "trusted a host key"
    HOST_KEY_REVOKED = "host_key_revoked", "stopped trusting a host key"
    SECRET_CHANGED = "secret_changed", "noticed a changed secret"
    TOKEN_CREATED = "token_created", "made an API token"
    TOKEN_REVOKED = "token_revoked", "revoked an API token"
    TOKEN_USED = "token_used", "used an API token from a new address"
    CATALOG_APPLIED = "catalog_applied", "applied a catalog commit"
    CATALOG_REFUSED = "catalog_refused", "refused a catalog commit"
    BREAK_GLASS = "break_glass", "signed in with a password while passwords are off"
    FREEZE_OVERRIDDEN = "freeze_overridden", "deployed in a freeze window"


class TokenScope(models.TextChoices):
    """What a personal API token may do (never more than its owner may, at the moment of use)."""

    READ = "read", "read only"
    DEPLOY = "deploy", "deploy to named services/environments"


class DeployTrigger(models.TextChoices):
    """Why a deploy happened."""

    MANUAL = "manual", "manual"
    PROMOTE = "promote", "promotion"
    CONTINUOUS = "continuous", "continuous delivery"
    ROLLBACK = "rollback", "rollback"  # back to a release still on the hosts: no build, no gates
    JOIN = "join", "hosts joined"  # hosts new in the environment get the release that runs there (Gantry asks)


class BuildResult(models.TextChoices):
    SUCCESS = "success", "success"
    FAILURE = "failure", "failure"
    UNSTABLE = "unstable", "unstable"
    ABORTED = "aborted", "aborted"
    NOT_BUILT = "not_built", "not built"
    RUNNING = "running", "running"

    @property
    def colour(self) -> str:
        return _BUILD_COLOURS[self]

    @property
    def is_green(self) -> bool:
        return self == BuildResult.SUCCESS


_BUILD_COLOURS = {
    BuildResult.SUCCESS: "green",
    BuildResult.FAILURE: "red",
    BuildResult.UNSTABLE: "amber",
    BuildResult.ABORTED: "grey",
    BuildResult.NOT_BUILT: "grey",
    BuildResult.RUNNING: "blue",
}


class SyncSource(models.TextChoices):
    BRANCHES = "branches", "branches"
    BUILDS = "builds", "builds"
    CHECKS = "checks", "required checks"


# Hooks (deployer/deploys/phase_hooks.py; the phases are catalog/schema.py's HookPhase):
# Phases whose failure never changes the outcome (the deploy has already gone one way).
HOOKS_NEVER_REQUIRED = frozenset({"after_rollback", "on_failure"})
