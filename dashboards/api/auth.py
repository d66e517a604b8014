"""Who calls the API: knox's tokens (personal ones with a scope, legacy ones until their cut-over date) or
the session. A personal token's scope is checked on every request (TokenScopeAllows); the API's own checks
run as its owner, so a token never does more than its owner may now."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.http import http_date
from knox.auth import TokenAuthentication
from knox.models import AuthToken
from rest_framework import exceptions
from rest_framework.authentication import get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from deployer.environments.api_tokens import (
    PREFIX,
    groups_refusal,
    legacy_refusal,
    legacy_until,
    token_refusal,
    token_used,
)
from deployer.lib.client_ip import client_ip
from deployer.models import Deploy, PersonalToken

if TYPE_CHECKING:  # (rest_framework.views reads the settings that name this module: no import at run time)
    from rest_framework.views import APIView

_NOTICE = "gantry_token_notice"  # set on the request for a legacy token; the middleware adds the headers


class GantryTokenAuthentication(TokenAuthentication):
    """`Authorization: Bearer <token>` (or `Token <token>`, as before)."""

    def authenticate(self, request: Request) -> tuple[Any, AuthToken] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() not in {b"bearer", b"token"}:
            return None
        if len(header) != 2 or not header[1].isascii():
            raise exceptions.AuthenticationFailed("the Authorization header is: Bearer <token>")
        user, token = self.authenticate_credentials(header[1])
        if refusal := groups_refusal(user):
            raise exceptions.AuthenticationFailed(refusal)
        personal = PersonalToken.objects.filter(token=token).select_related("token__user").first()
        if personal is None and token.token_key.startswith(PREFIX):  # a personal token that lost its scope
            raise exceptions.AuthenticationFailed("this token has no scope any more; make a new one on /me/")
        if personal is None:
            if refusal := legacy_refusal():
                raise exceptions.AuthenticationFailed(refusal)
            setattr(request._request, _NOTICE, True)
        else:
            token_used(personal, client_ip(request._request))
            token.personal = personal
        return user, token

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"


class TokenScopeAllows(BasePermission):
    """A personal token's scope: reading always; a change only where its deploy scope names."""

    message = "this token's scope does not allow it"

    def has_permission(self, request: Request, view: APIView) -> bool:
        personal = getattr(request.auth, "personal", None)
        if personal is None:
            return True
        refusal = token_refusal(personal, method=request.method or "GET", target=_target(request, view))
        if refusal:
            self.message = refusal
        return not refusal


def _target(request: Request, view: APIView) -> tuple[str, str] | None:
    """The service and environment a request changes: from its URL, its deploy, or its body."""
    kwargs = view.kwargs
    if "name" in kwargs and "environment" in kwargs:
        return str(kwargs["name"]), str(kwargs["environment"])
    if "name" in kwargs:  # a service's own action (refresh): the URL says which, never the body
        return str(kwargs["name"]), ""
    if "pk" in kwargs:
        row = Deploy.objects.filter(pk=kwargs["pk"]).values_list("environment__service__name", "environment__name")
        return row.first()
    data = request.data if isinstance(request.data, dict) else {}
    if isinstance(data.get("service"), str):  # no environment: the service's first (a service token covers it)
        environment = data.get("environment")
        return data["service"], environment if isinstance(environment, str) else ""
    return None


def token_notice_middleware(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    """Answers to a legacy token say when it stops working (Deprecation, Sunset: RFC 8594) and what to do."""

    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        if getattr(request, _NOTICE, False):
            until = legacy_until()
            response["Deprecation"] = "true"
            response["Sunset"] = http_date(_end_of(until))
            response["X-Gantry-Token-Notice"] = (
                f"legacy token: it stops working after {until:%Y-%m-%d}; make a personal token on /me/"
            )
        return response

    return middleware


def _end_of(day: datetime.date) -> float:
    # The cut-over is a day in Gantry's TIME_ZONE (timezone.localdate): its last second there.
    return datetime.datetime.combine(day, datetime.time.max, tzinfo=timezone.get_current_timezone()).timestamp()
