"""Each outside system's health as the workers see it.

Syncs ask `unavailable_reason` before calling out: a system that failed
several times in a row is paused for a while, and GitHub is not called when
its rate-limit budget is down to the reserve. Skipping costs nothing, so one
sick system never holds the workers (or the other services) for long.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from deployer.integrations import github, jenkins
from deployer.integrations.github import RateLimit
from deployer.models import IntegrationStatus

GITHUB = "github"
JENKINS = "jenkins"
_LABELS = {GITHUB: "GitHub", JENKINS: "Jenkins"}


def enabled(name: str) -> bool:
    """Switched on by its settings (GITHUB_TOKEN, JENKINS_URL)."""
    return {GITHUB: github.enabled, JENKINS: jenkins.enabled}[name]()


def overview() -> list[tuple[str, bool, IntegrationStatus | None]]:
    """(label, switched on, last known status) of each outside system, for the operator's page (one query)."""
    statuses = {s.name: s for s in IntegrationStatus.objects.all()}
    return [(_LABELS[name], enabled(name), statuses.get(name)) for name in (GITHUB, JENKINS)]


def commit_url(repo: str, sha: str) -> str:
    """Where people see a commit on GitHub ("" for a service that is not on GitHub)."""
    return github.commit_url(repo, sha) if repo else ""


def status(name: str) -> IntegrationStatus:
    return IntegrationStatus.objects.get_or_create(name=name)[0]


def unavailable_reason(name: str) -> str:
    """Why calls to `name` should be skipped now; empty if they may go ahead."""
    current = status(name)
    now = timezone.now()
    if current.paused_until and current.paused_until > now:
        return f"{name} paused until {timezone.localtime(current.paused_until):%H:%M:%S} after: {current.error}"
    if (
        name == GITHUB
        and current.rate_remaining is not None
        and current.rate_remaining <= settings.GITHUB_RATE_LIMIT_RESERVE
        and current.rate_reset
        and current.rate_reset > now
    ):
        return (
            f"GitHub rate-limit budget is down to {current.rate_remaining} (reserve "
            f"{settings.GITHUB_RATE_LIMIT_RESERVE}); next try after {timezone.localtime(current.rate_reset):%H:%M:%S}"
        )
    return ""


def _rate_fields(rate: RateLimit | None) -> dict[str, object]:
    if rate is None:
        return {}
    return {"rate_limit": rate.limit, "rate_remaining": rate.remaining, "rate_reset": rate.reset_at}


def record_success(name: str, *, requests: int = 0, rate: RateLimit | None = None) -> None:
    status(name)
    IntegrationStatus.objects.filter(name=name).update(
        ok_at=timezone.now(),
        consecutive_failures=0,
        paused_until=None,
        requests=F("requests") + requests,
        **_rate_fields(rate),
    )


def record_failure(
    name: str,
    error: str,
    *,
    transient: bool,
    requests: int = 0,
    rate: RateLimit | None = None,
    pause_until: datetime | None = None,
) -> None:
    """Count a failure; after enough transient ones in a row (or when told until when), pause calls."""
    current = status(name)
    failures = current.consecutive_failures + 1
    now = timezone.now()
    if pause_until is None and transient and failures >= settings.INTEGRATION_FAILURES_BEFORE_PAUSE:
        pause_until = now + timedelta(seconds=settings.INTEGRATION_PAUSE_SECONDS)
    IntegrationStatus.objects.filter(name=name).update(
        error_at=now,
        error=error[:1000],
        consecutive_failures=failures,
        paused_until=pause_until,
        requests=F("requests") + requests,
        **_rate_fields(rate),
    )
