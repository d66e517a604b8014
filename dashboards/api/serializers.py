"""What the REST API reads and writes: DRF serializers over the deployer's models."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from rest_framework import serializers

from deployer.environments.freezes import freeze_now
from deployer.lib.text import REASON_MAX
from deployer.models import Branch, Build, Deploy, Environment, Service

NAME_RE = r"^[a-z0-9][a-z0-9_-]*$"
MAX_LOCK_HOURS = 24 * 30


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
            "url",
        ]

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
    freeze_override = serializers.CharField(
        max_length=500,
        required=False,
        default="",
        allow_blank=True,
        help_text="An admin's reason for deploying in a freeze window (at least 10 characters; recorded); "
        "a browser session only, never a token.",
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
        min_value=1, required=False, default=None, help_text="Deploy id to go back to (default: the previous)."
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
