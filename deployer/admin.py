"""The admin edits the catalog models; deploys are shown read-only (they are the audit record).

Django staff may read the records here; what grants access (grants, users,
groups, Slack links, API tokens) or runs on hosts (services, environments and
their commands, hosts) or decides where Slack speaks (teams' channels) is for
Gantry admins only (superusers), whatever model permissions a staff account was
given.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.db.models import QuerySet
from django.http import HttpRequest
from knox.admin import AuthTokenAdmin
from knox.models import AuthToken

from deployer.environments.host_keys import host_key_revoke
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
    TrustedHostKey,
    WebhookDelivery,
)


class SuperuserOnly:
    """Seen and changed by superusers only (staff model permissions do not count here)."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)


class FromCatalog(SuperuserOnly):
    """What the catalog makes: read-only here while the catalog lives in git (two sources of truth would
    undo each other at the next commit); the list says where to change them."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return super().has_add_permission(request) and not settings.CATALOG_REPO

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and not settings.CATALOG_REPO

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and not settings.CATALOG_REPO

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        if settings.CATALOG_REPO:
            messages.info(
                request,
                f"These come from the catalog in git ({settings.CATALOG_REPO}, branch {settings.CATALOG_BRANCH}, "
                f"{settings.CATALOG_PATH}): change them there. The Catalog page shows the commit that is live.",
            )
        return super().changelist_view(request, extra_context)  # type: ignore[misc]


class HostInline(FromCatalog, admin.TabularInline):
    model = Host
    extra = 0


@admin.register(Team)
class TeamAdmin(FromCatalog, admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(Service)
class ServiceAdmin(FromCatalog, admin.ModelAdmin):
    list_display = ["name", "team", "github_repo", "jenkins_job", "default_branch"]
    list_filter = ["team"]
    search_fields = ["name", "repo_url", "github_repo"]


@admin.register(Environment)
class EnvironmentAdmin(FromCatalog, admin.ModelAdmin):
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
    readonly_fields = ("address", "status", "release", "previous_release", "message", "finished_at")
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
class GrantAdmin(SuperuserOnly, admin.ModelAdmin):
    """Grants made here stay; those from the catalog are replaced by each catalog load."""

    list_display = ["principal", "role", "team", "service", "from_catalog"]
    list_filter = ["role", "from_catalog", "team"]
    search_fields = ["principal"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and (obj is None or not obj.from_catalog)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or not obj.from_catalog)


@admin.register(TrustedHostKey)
class TrustedHostKeyAdmin(SuperuserOnly, admin.ModelAdmin):
    """The host keys every worker trusts. Keys are added by `manage.py trust_host` (it asks the host for its key
    and shows the fingerprint); deleting one here stops trusting it, with an audit entry."""

    list_display = ["host", "key_type", "fingerprint", "trusted_by_name", "trusted_at"]
    search_fields = ["host", "fingerprint"]
    readonly_fields = ["host", "key_type", "key", "fingerprint", "trusted_by", "trusted_by_name", "trusted_at"]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: TrustedHostKey) -> None:
        host_key_revoke(row=obj, user=request.user if request.user.is_authenticated else None)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[TrustedHostKey]) -> None:
        for row in queryset:
            self.delete_model(request, row)


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
class SlackIdentityAdmin(SuperuserOnly, admin.ModelAdmin):
    """Link a Slack user to a Gantry account by hand (tick `pinned`) when their e-mails differ."""

    list_display = ("slack_user_id", "slack_name", "email", "user", "pinned", "checked_at")
    search_fields = ("slack_user_id", "slack_name", "email", "user__username")


# Accounts and groups grant access too (a group named in a grant, a superuser flag).
admin.site.unregister(get_user_model())
admin.site.unregister(Group)


@admin.register(get_user_model())
class GantryUserAdmin(SuperuserOnly, UserAdmin):
    pass


@admin.register(Group)
class GantryGroupAdmin(SuperuserOnly, GroupAdmin):
    pass


# API tokens act as their user: only a superuser makes one (its key is shown once) or revokes one. Only
# digests are stored, so nobody can read a token back.
admin.site.unregister(AuthToken)


@admin.register(AuthToken)
class GantryAuthTokenAdmin(SuperuserOnly, AuthTokenAdmin):
    list_display = ("token_key", "user", "created", "expiry")
