"""Signing in through the team's identity provider: mozilla-django-oidc's two views (the redirect with PKCE,
and the callback), reading their settings as deployer/environments/team_identity.py does (endpoints
discovered). A provider that is down, slow or answers oddly sends the person back to the sign-in page with
a message, never a 500. Without GANTRY_OIDC_ISSUER both answer 404. Signing in with GitHub: its two views
below, the same way."""

from __future__ import annotations

import logging
from typing import Any

import requests
from authlib.integrations.base_client import OAuthError
from django.contrib.auth import authenticate, login
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import SuspiciousOperation
from django.db import IntegrityError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.crypto import constant_time_compare
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET
from github import BadAttributeException, GithubException
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from deployer.environments.github_sign_in import authorization, github_enabled, github_person, github_refusal
from deployer.environments.team_identity import oidc_enabled, oidc_setting

logger = logging.getLogger(__name__)
# What a provider that is down, slow or odd raises on the way (network, HTTP status, its JSON, its token).
PROVIDER_TROUBLE = (requests.RequestException, SuspiciousOperation, KeyError, ValueError, TypeError)


def _failed(why: Exception) -> HttpResponse:
    logger.warning("sign-in through the identity provider failed: %s: %s", why.__class__.__name__, why)
    return HttpResponseRedirect(oidc_setting("LOGIN_REDIRECT_URL_FAILURE"))


class SsoStart(OIDCAuthenticationRequestView):
    get_settings = staticmethod(oidc_setting)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The base class reads the authorization endpoint here; it is read when a person asks to sign in.
        super(OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)
        self.OIDC_RP_CLIENT_ID = oidc_setting("OIDC_RP_CLIENT_ID")

    @property
    def OIDC_OP_AUTH_ENDPOINT(self) -> str:
        endpoint: str = oidc_setting("OIDC_OP_AUTHORIZATION_ENDPOINT")
        return endpoint

    def get(self, request: HttpRequest) -> HttpResponse:
        if not oidc_enabled():
            raise Http404("single sign-on is not set up here (GANTRY_OIDC_ISSUER)")
        try:
            response: HttpResponse = super().get(request)
        except PROVIDER_TROUBLE as exc:
            return _failed(exc)
        return response


class SsoCallback(OIDCAuthenticationCallbackView):
    get_settings = staticmethod(oidc_setting)

    def get(self, request: HttpRequest) -> HttpResponse:
        if not oidc_enabled():
            raise Http404("single sign-on is not set up here (GANTRY_OIDC_ISSUER)")
        try:
            response: HttpResponse = super().get(request)
        except PROVIDER_TROUBLE as exc:
            return _failed(exc)
        return response


# --- GitHub (an OAuth app): deployer/environments/github_sign_in.py -----------------------------------

GITHUB_SESSION_KEY = "github_sign_in"
GITHUB_FAILED = "/accounts/login/?github=failed"
# What a GitHub that is down, slow or odd raises on the way (authlib, the network, PyGithub, its JSON).
GITHUB_TROUBLE = (
    OAuthError,
    requests.RequestException,
    GithubException,
    BadAttributeException,
    SuspiciousOperation,  # (a deactivated account)
    IntegrityError,  # (two first sign-ins of one e-mail at once)
    KeyError,
    ValueError,
)


@login_not_required
@require_GET
def github_start(request: HttpRequest) -> HttpResponse:
    if not github_enabled():
        raise Http404("signing in with GitHub is not set up here (GANTRY_GITHUB_SIGN_IN_ORG)")
    url, saved = authorization(request.build_absolute_uri(reverse("github-sign-in-callback")))
    wanted = request.GET.get("next", "")
    safe = url_has_allowed_host_and_scheme(wanted, {request.get_host()}, require_https=request.is_secure())
    request.session[GITHUB_SESSION_KEY] = {**saved, "next": wanted if safe and wanted else "/"}
    return HttpResponseRedirect(url)


@login_not_required
@require_GET
def github_callback(request: HttpRequest) -> HttpResponse:
    if not github_enabled():
        raise Http404("signing in with GitHub is not set up here (GANTRY_GITHUB_SIGN_IN_ORG)")
    saved = request.session.pop(GITHUB_SESSION_KEY, None)
    state, code = request.GET.get("state", ""), request.GET.get("code", "")
    if not isinstance(saved, dict) or not code or not constant_time_compare(state, saved.get("state", "")):
        logger.warning("GitHub sign-in refused: no code, or a state this browser did not start with")
        return HttpResponseRedirect(GITHUB_FAILED)
    try:
        person = github_person(code, saved)
        # A refusal is the organization's word, not a failed password: it must not count towards the lockout.
        if refusal := github_refusal(person):
            logger.warning("GitHub sign-in of %s refused: %s", person.login, refusal)
            return HttpResponseRedirect(GITHUB_FAILED)
        user = authenticate(request, github=person)
    except GITHUB_TROUBLE as exc:
        logger.warning("signing in with GitHub failed: %s: %s", exc.__class__.__name__, exc)
        return HttpResponseRedirect(GITHUB_FAILED)
    if user is None:
        logger.warning("GitHub sign-in of %s refused: sign-in with GitHub is off", person.login)
        return HttpResponseRedirect(GITHUB_FAILED)
    login(request, user)
    return HttpResponseRedirect(saved["next"])
