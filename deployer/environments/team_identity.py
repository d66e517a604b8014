"""Signing in with the team's identity: OpenID Connect, with any provider (Okta, Google, Entra ID, Keycloak,
Dex, GitLab), through mozilla-django-oidc — a small, well-kept relying party that does the code flow with
PKCE, checks the ID token's signature against the provider's keys, and leaves the user mapping to us. (Its
one gap, discovery, is filled here: the provider's endpoints come from its issuer's
/.well-known/openid-configuration, read when first needed, never at start-up.)

The provider's groups (the GANTRY_OIDC_GROUPS_CLAIM claim) become the person's Django groups at every
sign-in, so the catalog's `@group` grants follow them: a person removed from a group loses the grant at
their next sign-in, and at the latest when their session ends (GANTRY_SESSION_HOURS).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, User
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings

from deployer.choices import AuditAction
from deployer.environments.audit import audit_record
from deployer.lib.client_ip import client_ip
from deployer.notify import outbox
from deployer.notify.story import escape

logger = logging.getLogger(__name__)

DISCOVERY_TIMEOUT = 10
# mozilla-django-oidc's endpoint settings, and where the provider's discovery document names them.
_ENDPOINTS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}


def oidc_enabled() -> bool:
    return bool(settings.OIDC_ISSUER and settings.OIDC_RP_CLIENT_ID)


@functools.cache
def _discovered(issuer: str) -> dict[str, Any]:
    url = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
    try:
        answer = requests.get(url, timeout=DISCOVERY_TIMEOUT)
        answer.raise_for_status()
        document: dict[str, Any] = answer.json()
    except (requests.RequestException, ValueError) as exc:
        raise SuspiciousOperation(f"cannot read the identity provider's {url}: {exc}") from exc
    if document.get("issuer", "").rstrip("/") != issuer.rstrip("/"):
        raise SuspiciousOperation(f"{url} names issuer {document.get('issuer')!r}, not {issuer!r}")
    return document


# Gantry's choices, not the operator's: the code flow always with PKCE; where a failed sign-in lands.
_FIXED = {"OIDC_USE_PKCE": True, "OIDC_TIMEOUT": 10, "LOGIN_REDIRECT_URL_FAILURE": "/accounts/login/?sso=failed"}


def oidc_setting(attr: str, *default: Any) -> Any:
    """A mozilla-django-oidc setting; an endpoint the settings leave out comes from discovery."""
    if attr in _FIXED:
        return _FIXED[attr]
    if attr in _ENDPOINTS and not getattr(settings, attr, ""):
        return _discovered(settings.OIDC_ISSUER)[_ENDPOINTS[attr]]
    return import_from_settings(attr, *default)


class TeamIdentity(OIDCAuthenticationBackend):
    """People signing in through the provider: found by their verified e-mail, made on first sign-in, their
    groups replaced by the provider's at every sign-in."""

    get_settings = staticmethod(oidc_setting)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The base class reads every endpoint here; Django makes a backend for each password sign-in too,
        # which must not wait for (or fail with) the provider: endpoints are read when a code arrives.
        self.UserModel = get_user_model()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("OIDC_"):
            return oidc_setting(name, None)
        raise AttributeError(name)

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        if not claims.get("email") or claims.get("email_verified") is False:
            logger.warning("sign-in refused: the provider gave no verified e-mail for %s", claims.get("sub"))
            return False
        return True

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        # Never a superuser: the break-glass account signs in with its password, not as whoever the
        # provider vouches for with its e-mail.
        return self.UserModel.objects.filter(email__iexact=claims["email"], is_active=True, is_superuser=False)

    def create_user(self, claims: dict[str, Any]) -> User:
        with transaction.atomic():
            user = self.UserModel.objects.create_user(_free_username(claims), email=claims["email"])
            user.set_unusable_password()  # signs in through the provider only
            user.save(update_fields=["password"])
            return self.update_user(user, claims)

    def update_user(self, user: User, claims: dict[str, Any]) -> User:
        names = claims.get(settings.OIDC_GROUPS_CLAIM) or []
        if not isinstance(names, list):
            names = [names]
        groups = [Group.objects.get_or_create(name=str(name)[:150])[0] for name in names if str(name).strip()]
        user.groups.set(groups)  # the provider says who is in which group: grants follow at once
        logger.info("%s signed in through the identity provider; groups: %s", user, ", ".join(map(str, groups)))
        return user


def _free_username(claims: dict[str, Any]) -> str:
    """The provider's preferred_username (else the e-mail's local part), unique among Gantry's users."""
    wanted = str(claims.get("preferred_username") or claims["email"].split("@")[0]).strip().lstrip("@")[:140]
    taken = set(get_user_model().objects.filter(username__startswith=wanted).values_list("username", flat=True))
    return next(name for name in [wanted, *(f"{wanted}-{n}" for n in range(2, 1000))] if name not in taken)


class PasswordSignIn(ModelBackend):
    """Gantry's own passwords. With GANTRY_LOCAL_PASSWORDS off (the team signs in through its provider),
    only a superuser may use one: the break-glass account, for when the provider is down; each such sign-in
    is audited (deployer/apps.py connects `break_glass_audit`)."""

    def user_can_authenticate(self, user: Any) -> bool:
        allowed: bool = super().user_can_authenticate(user)
        return allowed and (settings.LOCAL_PASSWORDS or bool(getattr(user, "is_superuser", False)))


def break_glass_audit(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    """A superuser signed in with a password while passwords are off: the audit log says who, when, from where."""
    backend = getattr(user, "backend", "")
    if settings.LOCAL_PASSWORDS or not backend.endswith(".PasswordSignIn"):
        return
    where = client_ip(request) if request is not None else "?"
    audit_record(
        AuditAction.BREAK_GLASS, actor=user, detail=f"signed in with a password (passwords are off), from {where}"
    )
    logger.warning("break-glass sign-in: %s with a password from %s", user, where)
    outbox.notice(
        f":rotating_light: {escape(user.get_username())} signed in to Gantry with a password (passwords are off: "
        f"break-glass) from {escape(where)}"
    )
