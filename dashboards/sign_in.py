"""Signing in through the team's identity provider: mozilla-django-oidc's two views (the redirect with PKCE,
and the callback), reading their settings as deployer/environments/team_identity.py does (endpoints
discovered). A provider that is down, slow or answers oddly sends the person back to the sign-in page with
a message, never a 500. Without GANTRY_OIDC_ISSUER both answer 404."""

from __future__ import annotations

import logging
from typing import Any

import requests
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

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
