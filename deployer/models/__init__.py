"""Gantry's data, split by concern; every model is importable from here (one app label, one migration history).

catalog.py   Team, Service, Environment, Host, CatalogState
sources.py   Branch, Tag, CommitChecks, Build, SyncState, IntegrationStatus, WebhookDelivery, ChangeSet,
             MigrationCheck, ScheduledRound
deploys.py   Deploy, DeployCommit, DeployHost, DeployLog, LeaseRequest
access.py    Grant, SystemIdentity, PersonalToken, ExternalIdentity
audit.py     AuditEntry
notify.py    SlackMessage, SlackAttempt, SlackIdentity, HookDelivery
apitests.py  ApiTestRun, ApiTestStep
trust.py     TrustedHostKey, OfferedHostKey
measurements.py Measurement, BudgetReading
timeline.py  DeployPhase, GrafanaAnnotation
"""

from __future__ import annotations

from deployer.models.access import ExternalIdentity, Grant, PersonalToken, SystemIdentity
from deployer.models.apitests import ApiTestRun, ApiTestStep
from deployer.models.audit import AuditEntry, AuditQuerySet
from deployer.models.catalog import CatalogState, Environment, Host, Service, Team
from deployer.models.deploys import (
    Artifact,
    Deploy,
    DeployCommit,
    DeployHost,
    DeployLog,
    DeployQuerySet,
    LeaseRequest,
)
from deployer.models.measurements import BudgetReading, Measurement
from deployer.models.notify import HookDelivery, SlackAttempt, SlackIdentity, SlackMessage
from deployer.models.sources import (
    Branch,
    Build,
    ChangeSet,
    CommitChecks,
    IntegrationStatus,
    MigrationCheck,
    ScheduledRound,
    SyncState,
    Tag,
    WebhookDelivery,
)
from deployer.models.timeline import DeployPhase, GrafanaAnnotation
from deployer.models.trust import OfferedHostKey, TrustedHostKey

__all__ = [
    "ApiTestRun",
    "ApiTestStep",
    "Artifact",
    "AuditEntry",
    "AuditQuerySet",
    "Branch",
    "BudgetReading",
    "Build",
    "CatalogState",
    "ChangeSet",
    "CommitChecks",
    "Deploy",
    "DeployCommit",
    "DeployHost",
    "DeployLog",
    "DeployPhase",
    "DeployQuerySet",
    "Environment",
    "ExternalIdentity",
    "GrafanaAnnotation",
    "Grant",
    "HookDelivery",
    "Host",
    "IntegrationStatus",
    "LeaseRequest",
    "Measurement",
    "MigrationCheck",
    "OfferedHostKey",
    "PersonalToken",
    "ScheduledRound",
    "Service",
    "SlackAttempt",
    "SlackIdentity",
    "SlackMessage",
    "SyncState",
    "SystemIdentity",
    "Tag",
    "Team",
    "TrustedHostKey",
    "WebhookDelivery",
]
