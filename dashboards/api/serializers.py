"""What the REST API reads and writes: DRF serializers over the deployer's models."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from deployer.choices import Decision, DeployStatus
from deployer.environments.freezes import freeze_now, freezes_ahead
from deployer.lib.text import REASON_MAX
from deployer.models import AuditEntry, Branch, Build, Deploy, DeployLog, Environment, Host, Service, Tag

NAME_RE = r"^[a-z0-9][a-z0-9_-]*$"
SHA_RE = r"^[0-9a-f]{40}$"
MAX_LOCK_HOURS = 24 * 30
MAX_LOG_PAGE = 1000


class EnvironmentSerializer(serializers.ModelSerializer):
    locked = serializers.BooleanField(source="is_locked")
    current_deploy = serializers.SerializerMethodField()
    frozen = serializers.SerializerMethodField(help_text='The freeze window open now ("" when none).')

    class Meta:
        model = Environment
        fields = ["name", "production", "require_approval", "locked", "lock_reason", "frozen", "current_deploy"]

    def get_frozen(self, environment: Environment) -> str:
        return freeze_now(environment.freeze)

    def get_current_deploy(self, environment: Environment) -> int | None:
        current: dict[int, int] = self.context.get("current", {})
        return current.get(environment.pk)


class ServiceSerializer(serializers.ModelSerializer):
    team = serializers.CharField(source="team.name", default=None)
    environments = EnvironmentSerializer(many=True)

    class Meta:
        model = Service
        fields = ["name", "team", "github_repo", "default_branch", "jenkins_job", "environments"]


class BranchSerializer(serializers.ModelSerializer):
    class Meta:
        model = Branch
        fields = ["name", "sha", "author", "message", "committed_at"]


class TagSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ["name", "sha", "author", "message", "committed_at"]


class BuildSerializer(serializers.ModelSerializer):
    class Meta:
        model = Build
        fields = ["job", "number", "branch", "sha", "result", "started_at", "duration_ms", "url"]


class DeploySerializer(serializers.ModelSerializer):
    service = serializers.CharField(source="environment.service.name")
    environment = serializers.CharField(source="environment.name")
    requested_by = serializers.SerializerMethodField()
    duration_seconds = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    finished = serializers.SerializerMethodField(help_text="It ended (its status will not change again).")
    waiting_for_decision = serializers.SerializerMethodField(
        help_text='Why the rollout is paused for a person ("" when it is not): answer with decide.'
    )

    class Meta:
        model = Deploy
        fields = [
            "id",
            "service",
            "environment",
            "ref",
            "sha",
            "previous_sha",
            "status",
            "trigger",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
            "duration_seconds",
            "reason",
            "commits_total",
            "finished",
            "waiting_for_decision",
            "url",
        ]

    def get_finished(self, deploy: Deploy) -> bool:
        return deploy.status in DeployStatus.finished()

    def get_waiting_for_decision(self, deploy: Deploy) -> str:
        paused = deploy.paused_at is not None and not deploy.decision and deploy.status == DeployStatus.RUNNING
        return deploy.pause_reason if paused else ""

    def get_requested_by(self, deploy: Deploy) -> str | None:
        return deploy.requested_by.get_username() if deploy.requested_by else None

    def get_duration_seconds(self, deploy: Deploy) -> float | None:
        return deploy.duration.total_seconds() if deploy.duration else None

    def get_url(self, deploy: Deploy) -> str:
        return settings.GANTRY_BASE_URL + reverse("deploy", args=[deploy.pk])


class DeployFilterSerializer(serializers.Serializer):
    """The filters of the deploy list (query parameters)."""

    service = serializers.RegexField(NAME_RE, max_length=100, required=False)
    environment = serializers.RegexField(NAME_RE, max_length=50, required=False)
    status = serializers.CharField(max_length=30, required=False)


class DeployRequestSerializer(serializers.Serializer):
    service = serializers.RegexField(NAME_RE, max_length=100)
    environment = serializers.RegexField(NAME_RE, max_length=50, required=False, default="")
    ref = serializers.CharField(max_length=255, help_text="A branch name or a full 40-character sha.")
    force = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Deploy even if the ref lacks migration files the environment has applied (recorded).",
    )
    checklist = serializers.ListField(
        child=serializers.CharField(max_length=500),
        max_length=100,
        required=False,
        default=list,
        help_text="The environment's checklist items ticked, each as the catalog words it.",
    )
    override_lock = serializers.BooleanField(
        required=False, default=False, help_text="An admin deploys through the environment's lock (recorded)."
    )
    expected_sha = serializers.RegexField(
        SHA_RE,
        required=False,
        default="",
        allow_blank=True,
        help_text="The sha the plan showed: refused (409) if the ref has moved since.",
    )
    freeze_override = serializers.CharField(
        max_length=500,
        required=False,
        default="",
        allow_blank=True,
        help_text="An admin's reason for deploying in a freeze window (at least 10 characters; recorded); "
        "a browser session only, never a token.",
    )


class PromoteSerializer(serializers.Serializer):
    expected_sha = serializers.RegexField(
        SHA_RE,
        required=False,
        default="",
        allow_blank=True,
        help_text="The sha the plan showed: refused if what runs in the environment before has changed since.",
    )
    checklist = serializers.ListField(
        child=serializers.CharField(max_length=500), max_length=100, required=False, default=list
    )
    override_lock = serializers.BooleanField(required=False, default=False)
    force = serializers.BooleanField(
        required=False, default=False, help_text="Confirm a schema change the plan asks about (recorded)."
    )


class PlanQuerySerializer(serializers.Serializer):
    ref = serializers.CharField(max_length=255, required=False, default="", help_text="A branch, tag or sha.")
    promote = serializers.BooleanField(
        required=False, default=False, help_text="Plan a promotion: what runs in the environment before."
    )

    def validate(self, attrs: dict[str, object]) -> dict[str, object]:
        if not attrs["ref"] and not attrs["promote"]:
            raise serializers.ValidationError("say what to deploy: ref=<branch or sha>, or promote=true")
        return attrs


class CheckSerializer(serializers.Serializer):
    label = serializers.CharField()  # type: ignore[assignment]  # (a Field attribute of DRF's too: not used here)
    ok = serializers.BooleanField()
    detail = serializers.CharField()
    blocking = serializers.BooleanField(help_text="A failed blocking check refuses the deploy.")


class CommitSerializer(serializers.Serializer):
    sha = serializers.CharField()
    author = serializers.CharField()
    committed_at = serializers.DateTimeField()
    subject = serializers.CharField()


class PlanSerializer(serializers.Serializer):
    """What a deploy would do (the plan page): nothing is changed by asking."""

    service = serializers.CharField()
    environment = serializers.CharField()
    ref = serializers.CharField()
    sha = serializers.CharField()
    current_deploy = serializers.IntegerField(allow_null=True)
    current_sha = serializers.CharField(allow_blank=True)
    promoted_from = serializers.IntegerField(allow_null=True)
    blocked = serializers.BooleanField(help_text="A blocking check failed: a deploy now would be refused.")
    checks = CheckSerializer(many=True)
    batches = serializers.ListField(child=serializers.ListField(child=serializers.CharField()))
    eta_seconds = serializers.IntegerField(allow_null=True)
    eta_basis = serializers.IntegerField(help_text="How many earlier deploys the ETA comes from.")
    commits_ahead = serializers.IntegerField(allow_null=True, help_text="null: a worker is still listing them.")
    commits_behind = serializers.IntegerField()
    commits = CommitSerializer(many=True)
    migrations = serializers.ListField(child=serializers.DictField(child=serializers.CharField()))
    needs_confirmation = serializers.CharField(help_text='Why it asks for force=true ("" when it does not).')
    config_changes = serializers.ListField(child=serializers.CharField())
    build = serializers.CharField()
    secrets = serializers.CharField()
    analysis = serializers.CharField()
    checklist = serializers.ListField(child=serializers.CharField(), help_text="Items to tick (send them back).")


class LogQuerySerializer(serializers.Serializer):
    since = serializers.IntegerField(
        min_value=0, required=False, default=0, help_text="The id of the last line you have (0: from the start)."
    )
    limit = serializers.IntegerField(min_value=1, max_value=MAX_LOG_PAGE, required=False, default=500)


class LogLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeployLog
        fields = ["id", "at", "host", "level", "message"]


class LogPageSerializer(serializers.Serializer):
    lines = LogLineSerializer(many=True)
    next = serializers.IntegerField(help_text="Send it as since= to get the lines after these.")
    more = serializers.BooleanField(help_text="More lines are kept after these (ask again at once).")
    deploy = DeploySerializer()


class HostSerializer(serializers.ModelSerializer):
    class Meta:
        model = Host
        fields = ["address", "port", "user", "roles"]


class FreezeSerializer(serializers.Serializer):
    reason = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    zone = serializers.CharField()
    recurring = serializers.CharField()
    summary = serializers.CharField()


class EnvironmentDetailSerializer(EnvironmentSerializer):
    """One environment as its card on the service page shows it."""

    service = serializers.CharField(source="service.name")
    locked_by = serializers.CharField(source="locked_by.get_username", default=None)
    freezes = serializers.SerializerMethodField(help_text="Windows open now or starting within a week.")
    hosts = HostSerializer(many=True)

    class Meta(EnvironmentSerializer.Meta):
        fields = [
            "service",
            *EnvironmentSerializer.Meta.fields,
            "locked_by",
            "lock_expires_at",
            "freezes",
            "checklist",
            "batch_size",
            "follow_branch",
            "require_green_build",
            "base_url",
            "hosts",
        ]

    @extend_schema_field(FreezeSerializer(many=True))
    def get_freezes(self, environment: Environment) -> list[dict[str, object]]:
        return [{**FreezeSerializer(f).data, "summary": f.summary} for f in freezes_ahead(environment)]


class AuditEntrySerializer(serializers.ModelSerializer):
    who = serializers.CharField(source="actor_name")
    deploy = serializers.IntegerField(source="deploy_id", allow_null=True)

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "at",
            "who",
            "action",
            "team",
            "service",
            "environment",
            "deploy",
            "trigger",
            "ref",
            "sha",
            "previous_sha",
            "outcome",
            "duration_seconds",
            "detail",
        ]


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=REASON_MAX, required=False, default="", allow_blank=True)


class DecideSerializer(serializers.Serializer):
    choice = serializers.ChoiceField(
        choices=Decision.choices, help_text="retry (or look again), skip (or go on), abort (and roll back)."
    )


class LockSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=REASON_MAX)
    hours = serializers.IntegerField(
        min_value=0, max_value=MAX_LOCK_HOURS, required=False, default=0, help_text="0: until unlocked."
    )


class UnlockSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=REASON_MAX, required=False, default="", allow_blank=True)


class RollbackSerializer(serializers.Serializer):
    to = serializers.IntegerField(
        min_value=1,
        required=False,
        default=None,
        allow_null=True,
        help_text="Deploy id to go back to (default: the previous).",
    )
    force = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Roll back even across deploys that shipped migrations or ran post_release_command (recorded).",
    )


class CancelSerializer(serializers.Serializer):
    stop = serializers.BooleanField(
        required=False, default=False, help_text="Stop the commands running on hosts now (nothing is rolled back)."
    )


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
    running = serializers.IntegerField(required=False, help_text="The deploy holding the environment (409).")
