"""Personal API tokens: a person makes one on their page (it is shown once; knox keeps only its digest), with
an expiry and a scope: read only, or deploy to named services or environments. They are listed, revocable,
and audited when made, revoked and used from an address not seen before.

A token never does more than its owner may at the moment of use: the API runs its own checks as the owner,
and the scope only narrows them. Tokens made before (by `manage.py api_token` or the admin, without a scope)
are legacy tokens: they work as their owner until GANTRY_LEGACY_TOKENS_UNTIL, and every answer says so.

The tokens of a person who signs in through the team's provider act on the groups the provider gave at their
last sign-in; once that is older than GANTRY_TOKEN_GROUPS_MINUTES, they stop until the person signs in again
(a group they left must not live on in a CI job's token).
"""

from __future__ import annotations

import difflib
from datetime import date, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from knox.models import AuthToken

from deployer.choices import AuditAction, TokenScope
from deployer.environments.access import access_for
from deployer.environments.audit import audit_record
from deployer.errors import DeployRefused
from deployer.lib.text import one_line
from deployer.models import AuditEntry, ExternalIdentity, PersonalToken, Service

EXPIRY_DAYS = (7, 30, 90, 365)
PREFIX = "gantry_"  # so a leaked token is recognisable (secret scanners, logs)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
USE_RECORDED_EVERY = timedelta(minutes=1)  # last used: written at most this often per token


def token_create(user: User, *, name: str, scope: str, targets: list[str], days: int) -> tuple[PersonalToken, str]:
    """A new token of `user`, and its text (shown once). DeployRefused says what is wrong with the request."""
    name = one_line(name, limit=None)
    if not name or len(name) > 100:
        raise DeployRefused("name the token (at most 100 characters): what holds it, e.g. 'ci: billing deploys'")
    if scope not in TokenScope.values:
        raise DeployRefused(f"the scope is read or deploy, not {scope!r}")
    if days not in EXPIRY_DAYS:
        raise DeployRefused(f"a token expires after {', '.join(map(str, EXPIRY_DAYS))} days; pick one of them")
    wanted = [target.strip().strip("/") for target in targets if target.strip()]
    if scope == TokenScope.DEPLOY:
        if not wanted:
            raise DeployRefused("a deploy token names where it deploys: service, or service/environment")
        for target in wanted:
            _target_check(user, target)
    elif wanted:
        raise DeployRefused("a read-only token reads what you may read: leave the services out")
    with transaction.atomic():
        token, text = AuthToken.objects.create(user=user, expiry=timedelta(days=days), prefix=PREFIX)
        made = PersonalToken.objects.create(token=token, name=name, scope=scope, targets=sorted(set(wanted)))
        audit_record(AuditAction.TOKEN_CREATED, actor=user, detail=f"{describe(made)}; expires {token.expiry:%Y-%m-%d}")
    return made, text


def _target_check(user: User, target: str) -> None:
    service_name, _, environment_name = target.partition("/")
    service = Service.objects.filter(name=service_name).first()
    if service is None:
        names = list(Service.objects.values_list("name", flat=True))
        close = difflib.get_close_matches(service_name, names, n=1)
        raise DeployRefused(f"no service {service_name!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
    environments = list(service.environments.all())
    if environment_name:
        environments = [env for env in environments if env.name == environment_name]
        if not environments:
            known = ", ".join(env.name for env in service.environments.all())
            raise DeployRefused(f"{service_name} has no environment {environment_name!r} (it has {known})")
    access = access_for(user)
    if not any(access.can_deploy(env) for env in environments):
        raise DeployRefused(f"you may not deploy to {target} now, so no token of yours may")


def describe(token: PersonalToken) -> str:
    where = f" to {', '.join(token.targets)}" if token.scope == TokenScope.DEPLOY else ""
    return f"token {token.name!r} ({token.token.token_key}…): {TokenScope(token.scope).label}{where}"


def tokens_of(user: User) -> tuple[list[PersonalToken], list[AuthToken]]:
    """The person's personal tokens, newest first, and their legacy tokens (to revoke)."""
    mine = PersonalToken.objects.filter(token__user=user).exclude(token__expiry__lt=timezone.now())
    personal = list(mine.select_related("token").order_by("-token__created"))  # (knox deletes expired ones on use)
    legacy = list(AuthToken.objects.filter(user=user, scope__isnull=True).order_by("-created"))
    return personal, legacy


def token_revoke(user: User, token_key: str) -> str:
    """Revoke one of the person's tokens (personal or legacy), by the key its list shows; what was done."""
    token = AuthToken.objects.filter(user=user, token_key=token_key).select_related("scope").first()
    if token is None:
        raise DeployRefused("you have no such token (it may have expired, or been revoked already)")
    personal = PersonalToken.objects.filter(token=token).select_related("token").first()
    said = describe(personal) if personal else f"legacy token {token.token_key}…"
    with transaction.atomic():
        token.delete()
        audit_record(AuditAction.TOKEN_REVOKED, actor=user, detail=said)
    return f"revoked {said}"


def token_refusal(token: PersonalToken, *, method: str, target: tuple[str, str] | None) -> str:
    """Why the token may not make this request ("" when it may): reading is always in scope; changing
    something needs a deploy token naming the request's service or environment."""
    if method.upper() in SAFE_METHODS:
        return ""
    if token.scope != TokenScope.DEPLOY:
        return f"token {token.name!r} is read only; make a deploy token on your page for this"
    if target is None:
        return f"token {token.name!r} may deploy to {', '.join(token.targets)} only, and this names no environment"
    service, environment = target
    if service in token.targets or f"{service}/{environment}" in token.targets:
        return ""
    return f"token {token.name!r} may deploy to {', '.join(token.targets)} only, not {service}/{environment}"


def token_used(token: PersonalToken, address: str) -> None:
    """Record where and when the token was used (at most once a minute); a new address is audited."""
    now = timezone.now()
    if token.last_used_from == address and token.last_used_at and now - token.last_used_at < USE_RECORDED_EVERY:
        return
    said = f"{describe(token)}; from {address}"
    if address != token.last_used_from and not AuditEntry.objects.filter(action=AuditAction.TOKEN_USED, detail=said):
        audit_record(AuditAction.TOKEN_USED, actor=token.token.user, detail=said)
    PersonalToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_from=address[:64])
    token.last_used_at, token.last_used_from = now, address[:64]


def legacy_until() -> date:
    until: date = settings.LEGACY_TOKENS_UNTIL
    return until


def legacy_refusal(today: date | None = None) -> str:
    """Why a legacy token no longer works ("" while it does)."""
    until = legacy_until()
    if (today or timezone.localdate()) <= until:
        return ""
    return (
        f"this is a legacy API token, which stopped working after {until:%Y-%m-%d}: make a personal token on your "
        "page (/me/), with the scope it needs"
    )


def groups_refusal(user: User) -> str:
    """Why `user`'s tokens wait for a sign-in ("" when they need not): their groups are the provider's word
    at their last sign-in, and that is older than GANTRY_TOKEN_GROUPS_MINUTES."""
    minutes = settings.TOKEN_GROUPS_MINUTES
    checks = list(ExternalIdentity.objects.filter(user=user).values_list("checked_at", flat=True))
    if not checks or minutes <= 0:
        return ""  # an account of Gantry's own: its groups are Gantry's
    latest = max((checked for checked in checks if checked is not None), default=None)
    if latest is not None and latest >= timezone.now() - timedelta(minutes=minutes):
        return ""
    when = f"at {timezone.localtime(latest):%Y-%m-%d %H:%M}" if latest else "never"
    return (
        f"your groups were last checked with the identity provider {when}; sign in to Gantry in a browser and "
        f"this token works again (tokens wait for a sign-in every {minutes} minutes: GANTRY_TOKEN_GROUPS_MINUTES)"
    )
