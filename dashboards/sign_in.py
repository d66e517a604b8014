"""Signing in through the team's identity provider: mozilla-django-oidc's two views (the redirect with PKCE,
and the callback), reading their settings as deployer/environments/team_identity.py does (endpoints discovered).
Without GANTRY_OIDC_ISSUER both answer 404."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from deployer.environments.team_identity import oidc_enabled, oidc_setting


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
        response: HttpResponse = super().get(request)
        return response


class SsoCallback(OIDCAuthenticationCallbackView):
    get_settings = staticmethod(oidc_setting)

    def get(self, request: HttpRequest) -> HttpResponse:
        if not oidc_enabled():
            raise Http404("single sign-on is not set up here (GANTRY_OIDC_ISSUER)")
        response: HttpResponse = super().get(request)
        return response
