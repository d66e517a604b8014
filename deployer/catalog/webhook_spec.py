"""The catalog's `webhooks:` key (notify/hooks_out.py sends them): the team's own tools told of every deploy.

An environment key, so `defaults:` of a team or of the catalog give it to many environments; like freeze
windows, a team's webhooks add to an environment's own (a team's incident bot must not be dropped by an
environment that adds a chat hook). The secret is never in the catalog: `secret_env` names a variable of
Gantry's own environment (GANTRY_WEBHOOK_...) holding it, so a catalog author chooses which of those secrets
signs, never another of Gantry's (SECRET_KEY would be a signing oracle).
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from deployer.catalog.fields import Spec
from deployer.lib.guarded_http import blocked_host, origin_of

HookEvent = Literal[
    "deploy.requested",
    "deploy.started",
    "deploy.batch_done",
    "deploy.analysis",
    "deploy.succeeded",
    "deploy.failed",
    "deploy.rolled_back",
    "deploy.cancelled",
    "deploy.tests_failed",
    "deploy.interrupted",
    "environment.locked",
    "environment.unlocked",
]
HOOK_EVENTS: tuple[str, ...] = HookEvent.__args__  # type: ignore[attr-defined]
SECRET_ENV_PATTERN = r"^GANTRY_WEBHOOK_[A-Z0-9_]{1,60}$"


def valid_hook_url(value: str) -> str:
    try:
        origin = origin_of(value)
    except ValueError as exc:
        raise ValueError("must be an http:// or https:// URL, e.g. https://hooks.example.com/gantry") from exc
    parts = urlsplit(value)
    if parts.username or parts.password:
        raise ValueError("must not carry a user or password: the receiver checks the signature instead")
    if problem := blocked_host(origin[1]):
        raise ValueError(f"is never called: {problem}")
    if len(value) > 500:
        raise ValueError("is longer than 500 characters")
    return value


class WebhookSpec(Spec):
    url: Annotated[str, AfterValidator(valid_hook_url)] = Field(description="where each event is POSTed as JSON")
    secret_env: str = Field(
        pattern=SECRET_ENV_PATTERN,
        description="the variable of Gantry's environment holding the HMAC secret: GANTRY_WEBHOOK_<TEAM>_<NAME>",
    )
    events: list[HookEvent] | None = Field(
        default=None, description="only these events (default: all), e.g. [deploy.succeeded, deploy.failed]"
    )
