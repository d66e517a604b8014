"""Start-up checks: an integration switched on with incomplete settings fails loudly."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Warning, register


def _url_ok(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


@register()
def integrations_configured(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    problems: list[Error | Warning] = []
    if settings.GITHUB_TOKEN:
        for name in ("GITHUB_API_URL", "GITHUB_WEB_URL"):
            if not _url_ok(getattr(settings, name)):
                problems.append(
                    Error(f"{name} must be an http(s) URL", hint="e.g. https://api.github.com", id="gantry.E001")
                )
    elif settings.GITHUB_WEBHOOK_SECRET:
        problems.append(
            Warning(
                "GITHUB_WEBHOOK_SECRET is set but GITHUB_TOKEN is not: webhooks arrive but GitHub sync is off",
                hint="set GITHUB_TOKEN to a token that can read the repositories",
                id="gantry.W001",
            )
        )
    if settings.JENKINS_URL:
        if not _url_ok(settings.JENKINS_URL):
            problems.append(
                Error("JENKINS_URL must be an http(s) URL", hint="e.g. https://ci.example.com", id="gantry.E002")
            )
        if bool(settings.JENKINS_USER) != bool(settings.JENKINS_TOKEN):
            problems.append(
                Error(
                    "JENKINS_USER and JENKINS_TOKEN go together",
                    hint="set both (an API token of that user), or neither for anonymous read access",
                    id="gantry.E003",
                )
            )
    return problems


@register()
def access_configured(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    if settings.DEFAULT_ROLE not in {"viewer", "deployer"}:
        return [
            Error(
                f"GANTRY_DEFAULT_ROLE is {settings.DEFAULT_ROLE!r}",
                hint="use viewer (people need a grant to deploy) or deployer (everyone may deploy outside production)",
                id="gantry.E004",
            )
        ]
    return []


@register()
def sign_in_gated(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Single sign-on without a gate would let anyone with an account at the provider in (Google, GitLab)."""
    if settings.OIDC_ISSUER and not (settings.OIDC_ALLOWED_DOMAINS or settings.OIDC_REQUIRED_GROUP):
        return [
            Error(
                "GANTRY_OIDC_ISSUER is set but nothing says who may sign in: nobody can until one of them is set",
                hint="set GANTRY_OIDC_ALLOWED_DOMAINS (e.g. example.com) and/or GANTRY_OIDC_REQUIRED_GROUP",
                id="gantry.E020",
            )
        ]
    return []
