"""Signing in with the team's identity: OpenID Connect, with any provider (Okta, Google, Entra ID, Keycloak,
Dex, GitLab), through mozilla-django-oidc — a small, well-kept relying party that does the code flow with
PKCE and checks the ID token's signature against the provider's keys, and leaves the people to us. What it
leaves out is done here: discovery (the endpoints come from the issuer's /.well-known/openid-configuration,
read when first needed, never at start-up), the ID token's issuer, audience and expiry, and who may come in.

A person is their provider identity (issuer and `sub`, kept in ExternalIdentity): never matched by e-mail or
name, which can be reused or chosen. Who may sign in at all is the team's: an e-mail domain
(GANTRY_OIDC_ALLOWED_DOMAINS) and/or a group (GANTRY_OIDC_REQUIRED_GROUP); with neither, nobody may (a
system check says so). New accounts are named by their verified e-mail address. The provider's groups
(GANTRY_OIDC_GROUPS_CLAIM) become the person's Django groups at every sign-in, so the catalog's `@group`
grants follow them: a person removed from a group loses the grant at their next sign-in, and at the latest
when their session ends (GANTRY_SESSION_HOURS). A deactivated account signs in no more, and its sessions end.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, User
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.utils import timezone
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings

from deployer import queue
from deployer.choices import AuditAction
from deployer.environments.audit import audit_record
from deployer.lib.client_ip import client_ip
from deployer.models import ExternalIdentity
from deployer.notify import outbox
from deployer.notify.story import escape

logger = logging.getLogger(__name__)

DISCOVERY_TIMEOUT = 10
DISCOVERY_RETRY_SECONDS = 30  # after a failed discovery, sign-ins fail at once this long (no worker waits)
CLOCK_SKEW_SECONDS = 60
# mozilla-django-oidc's endpoint settings, and where the provider's discovery document names them.
_ENDPOINTS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}
# Gantry's choices, not the operator's: the code flow always with PKCE; where a failed sign-in lands.
_FIXED = {"OIDC_USE_PKCE": True, "OIDC_TIMEOUT": 10, "LOGIN_REDIRECT_URL_FAILURE": "/accounts/login/?sso=failed"}
_failed_at: dict[str, float] = {}


def oidc_enabled() -> bool:
    return bool(settings.OIDC_ISSUER and settings.OIDC_RP_CLIENT_ID)


def discovery_forget() -> None:
    _discovered.cache_clear()
    _failed_at.clear()


def _discovery(issuer: str) -> dict[str, Any]:
    if time.monotonic() - _failed_at.get(issuer, -DISCOVERY_RETRY_SECONDS) < DISCOVERY_RETRY_SECONDS:
        raise SuspiciousOperation(f"the identity provider {issuer} did not answer a moment ago; try again shortly")
    try:
        return _discovered(issuer)
    except SuspiciousOperation:
        _failed_at[issuer] = time.monotonic()
        raise


@functools.cache  # (a failure raises, so only a good document is kept)
def _discovered(issuer: str) -> dict[str, Any]:
    url = f"{issuer}/.well-known/openid-configuration"
    try:
        answer = requests.get(url, timeout=DISCOVERY_TIMEOUT)
        answer.raise_for_status()
        document: dict[str, Any] = answer.json()
    except (requests.RequestException, ValueError) as exc:
        raise SuspiciousOperation(f"cannot read the identity provider's {url}: {exc}") from exc
    if not isinstance(document, dict) or str(document.get("issuer", "")).rstrip("/") != issuer:
        raise SuspiciousOperation(f"{url} does not name issuer {issuer!r}")
    if missing := [key for key in _ENDPOINTS.values() if not isinstance(document.get(key), str)]:
        raise SuspiciousOperation(f"{url} names no {', '.join(missing)}")
    return document


def oidc_setting(attr: str, *default: Any) -> Any:
    """A mozilla-django-oidc setting; an endpoint the settings leave out comes from discovery."""
    if attr in _FIXED:
        return _FIXED[attr]
    if attr in _ENDPOINTS and not getattr(settings, attr, ""):
        return _discovery(settings.OIDC_ISSUER)[_ENDPOINTS[attr]]
    return import_from_settings(attr, *default)


class TeamIdentity(OIDCAuthenticationBackend):
    """People signing in through the provider: matched by their provider identity, made on first sign-in,
    their groups replaced by the provider's at every sign-in."""

    get_settings = staticmethod(oidc_setting)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The base class reads every endpoint here; Django makes a backend for each password sign-in too,
        # which must not wait for (or fail with) the provider: endpoints are read when a code arrives.
        self.UserModel = get_user_model()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("OIDC_"):
            return oidc_setting(name, None)
        raise AttributeError(name)

    def authenticate(self, request: Any, **kwargs: Any) -> Any:
        # Only the callback (its state's nonce and PKCE verifier) signs in through here: a password form
        # with ?code=...&state=... in its URL must not reach the provider.
        if "nonce" not in kwargs or "code_verifier" not in kwargs or not oidc_enabled():
            return None
        return super().authenticate(request, **kwargs)

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        """The signature (the base class), then what it does not check: issuer, audience, expiry."""
        payload: dict[str, Any] = super().verify_token(token, **kwargs)
        now = time.time()
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if str(payload.get("iss", "")).rstrip("/") != settings.OIDC_ISSUER:
            raise SuspiciousOperation(f"the token's issuer is {payload.get('iss')!r}, not {settings.OIDC_ISSUER!r}")
        if settings.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("the token is not meant for Gantry (its audience)")
        if len(audiences) > 1 and payload.get("azp") != settings.OIDC_RP_CLIENT_ID:
            raise SuspiciousOperation("the token was issued to another party (azp)")
        expiry = payload.get("exp")
        if "nonce" in kwargs and (not isinstance(expiry, int | float) or expiry < now - CLOCK_SKEW_SECONDS):
            raise SuspiciousOperation("the ID token has expired")
        return payload

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The ID token's claims with the userinfo endpoint's on top (some providers put groups in one only),
        about the same subject."""
        userinfo: dict[str, Any] = super().get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("userinfo is about another subject than the ID token")
        return {**payload, **userinfo}

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        refusal = sign_in_refusal(claims)
        if refusal:
            logger.warning("sign-in of %s refused: %s", claims.get("sub"), refusal)
        return not refusal

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        """Only the account of this provider identity (deactivated ones too: they are refused, not remade)."""
        return self.UserModel.objects.filter(
            external_identities__issuer=settings.OIDC_ISSUER, external_identities__subject=claims["sub"]
        )

    def create_user(self, claims: dict[str, Any]) -> User:
        return provider_person(settings.OIDC_ISSUER, str(claims["sub"]), claims["email"], _claimed_groups(claims))

    def update_user(self, user: User, claims: dict[str, Any]) -> User:
        return provider_person(settings.OIDC_ISSUER, str(claims["sub"]), claims["email"], _claimed_groups(claims))

    def get_user(self, user_id: Any) -> User | None:
        """A session's user, while the account is active (deactivating someone ends their sessions)."""
        user: User | None = super().get_user(user_id)
        return user if user is not None and user.is_active else None


def _claimed_groups(claims: dict[str, Any]) -> list[str]:
    names = claims.get(settings.OIDC_GROUPS_CLAIM) or []
    return [str(name) for name in (names if isinstance(names, list) else [names])]


def provider_person(issuer: str, subject: str, email: str, groups: list[str]) -> User:
    """The account of this provider identity (made at its first sign-in, named by its verified e-mail), with
    the provider's e-mail and groups: the provider says who is in which group, so grants follow at once."""
    with transaction.atomic():
        identity = ExternalIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
        if identity is None:
            user = get_user_model().objects.create_user(_free_username(email), email=email)
            user.set_unusable_password()  # signs in through the provider only
            user.save(update_fields=["password"])
            identity = ExternalIdentity.objects.create(user=user, issuer=issuer, subject=subject)
        user = identity.user
        if not user.is_active:
            raise SuspiciousOperation(f"{user} is deactivated in Gantry")
        if user.email != email:  # the provider's verified address, never one typed into Gantry
            user.email = email
            user.save(update_fields=["email"])
        user.groups.set([Group.objects.get_or_create(name=name.strip()[:150])[0] for name in groups if name.strip()])
        ExternalIdentity.objects.filter(pk=identity.pk).update(checked_at=timezone.now())
        queue.enqueue_after_commit(queue.LINK_SLACK, user.pk)  # the Slack user with this e-mail is this person
    logger.info("%s signed in through %s; groups: %s", user, issuer, ", ".join(groups))
    return user


def sign_in_refusal(claims: dict[str, Any]) -> str:
    """Why the provider's word is not enough for this person ("" when it is): a subject and a verified
    e-mail, in an allowed domain and/or the required group."""
    email = str(claims.get("email") or "")
    if not claims.get("sub") or "@" not in email or claims.get("email_verified") is not True:
        return "no subject, or no verified e-mail (the provider must send email_verified: true)"
    domains = settings.OIDC_ALLOWED_DOMAINS
    if domains and email.rsplit("@", 1)[1].lower() not in domains:
        return f"{email}: its domain is not one of GANTRY_OIDC_ALLOWED_DOMAINS"
    groups = claims.get(settings.OIDC_GROUPS_CLAIM) or []
    groups = groups if isinstance(groups, list) else [groups]
    if settings.OIDC_REQUIRED_GROUP and settings.OIDC_REQUIRED_GROUP not in groups:
        return f"{email} is not in the group {settings.OIDC_REQUIRED_GROUP} (GANTRY_OIDC_REQUIRED_GROUP)"
    if not domains and not settings.OIDC_REQUIRED_GROUP:
        return "nobody may sign in until GANTRY_OIDC_ALLOWED_DOMAINS or GANTRY_OIDC_REQUIRED_GROUP says who"
    return ""


def _free_username(email: str) -> str:
    """The e-mail address (never a bare name a grant might mean for someone else), unique among users."""
    wanted = email.strip().lower()[:140]
    taken = set(get_user_model().objects.filter(username__startswith=wanted).values_list("username", flat=True))
    return next(name for name in [wanted, *(f"{wanted}-{n}" for n in range(2, 1000))] if name not in taken)


class PasswordSignIn(ModelBackend):
    """Gantry's own passwords. With GANTRY_LOCAL_PASSWORDS off (the team signs in through its provider),
    only a superuser may use one: the break-glass account, for when the provider is down; each such sign-in
    is audited and told on Slack (deployer/apps.py connects `break_glass_audit`)."""

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
