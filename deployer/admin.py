"""The admin edits the catalog models; deploys are shown read-only (they are the audit record)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from deployer.models import (
    AuditEntry,
    Branch,
    Build,
    Deploy,
    DeployHost,
    Environment,
    Grant,
    Host,
    IntegrationStatus,
    LeaseRequest,
    Service,
    SlackIdentity,
    SyncState,
    Team,
    WebhookDelivery,
)


class HostInline(admin.TabularInline):
    model = Host
    extra = 0


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "github_repo", "jenkins_job", "default_branch"]
    list_filter = ["team"]
    search_fields = ["name", "repo_url", "github_repo"]


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ["__str__", "deploy_path", "production", "require_green_build", "follow_branch"]
    list_filter = ["service"]
    inlines = [HostInline]


@admin.register(Branch)
class BranchAdmin(admin.ModelAdmin):
    list_display = ["service", "name", "sha", "author", "committed_at"]
    list_filter = ["service"]
    search_fields = ["name", "sha"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Audit records: visible to staff, never added, changed or deleted here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DeployHostInline(admin.TabularInline):
    model = DeployHost
    extra = 0
    can_delete = False
    readonly_fields = ["address", "status", "release", "previous_release", "message", "finished_at"]
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Deploy)
class DeployAdmin(ReadOnlyAdmin):
    list_display = ["pk", "environment", "ref", "sha", "status", "requested_by", "created_at"]
    list_filter = ["status", "environment__service"]
    search_fields = ["ref", "sha"]
    inlines = [DeployHostInline]


@admin.register(Build)
class BuildAdmin(ReadOnlyAdmin):
    list_display = ["service", "job", "number", "branch", "sha", "result", "started_at"]
    list_filter = ["result", "service"]
    search_fields = ["sha", "branch", "job"]


@admin.register(SyncState)
class SyncStateAdmin(ReadOnlyAdmin):
    list_display = ["service", "source", "synced_at", "attempted_at", "error"]
    list_filter = ["source"]


@admin.register(IntegrationStatus)
class IntegrationStatusAdmin(ReadOnlyAdmin):
    list_display = ["name", "ok_at", "error_at", "error", "rate_remaining", "rate_reset", "paused_until"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["source", "event", "delivery_id", "received_at", "processed_at", "outcome"]
    list_filter = ["source", "event"]


@admin.register(Grant)
class GrantAdmin(admin.ModelAdmin):
    """Grants made here stay; those from the catalog are replaced by each catalog load."""

    list_display = ["principal", "role", "team", "service", "from_catalog"]
    list_filter = ["role", "from_catalog", "team"]
    search_fields = ["principal"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None or not obj.from_catalog

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None or not obj.from_catalog


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: the audit log cannot be changed or deleted from anywhere."""

    list_display = ["at", "actor_name", "action", "service", "environment", "deploy_id", "detail"]
    list_filter = ["action", "service"]
    search_fields = ["actor_name", "service", "detail"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(LeaseRequest)
class LeaseRequestAdmin(admin.ModelAdmin):
    """Deploys queued behind a lease; delete one to drop it from the queue."""

    list_display = ["environment", "user", "ref", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SlackIdentity)
class SlackIdentityAdmin(admin.ModelAdmin):
    """Link a Slack user to a Gantry account by hand (tick `pinned`) when their e-mails differ."""

    list_display = ("slack_user_id", "slack_name", "email", "user", "pinned", "checked_at")
    search_fields = ("slack_user_id", "slack_name", "email", "user__username")
