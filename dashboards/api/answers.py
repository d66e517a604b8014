"""How the API answers: the signed-in person, paging, refusals in one shape ({"error": "..."}, the domain's
status code) and the deploy a request made. Every API view answers through these."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers, status
from rest_framework.exceptions import NotAuthenticated, ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from dashboards.api.serializers import DeploySerializer, ErrorSerializer
from deployer.deploys.request import queue_waiting_message
from deployer.errors import DeployConflict, DeployRefused
from deployer.models import Deploy

REFUSALS = {
    400: OpenApiResponse(ErrorSerializer, description="Bad request, or a rule refused it (the error says which)"),
    403: OpenApiResponse(ErrorSerializer, description="Not allowed here (the error names the grant needed)"),
    404: OpenApiResponse(ErrorSerializer, description="No such service, environment or deploy"),
    409: OpenApiResponse(ErrorSerializer, description="The environment is busy (running: the deploy holding it)"),
    423: OpenApiResponse(ErrorSerializer, description="The environment is locked or frozen"),
    503: OpenApiResponse(
        ErrorSerializer,
        description="The task queue is unreachable: the error says what happened (a deploy in `deploy` is "
        "recorded and starts as soon as the queue is back)",
    ),
}


def person(request: Request) -> User:
    """The signed-in person: every endpoint but the schema needs one (IsAuthenticated, the default)."""
    user = request.user
    if not isinstance(user, User):
        raise NotAuthenticated()
    return user


class Page(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


def refused(exc: DeployRefused) -> Response:
    body: dict[str, Any] = {"error": str(exc)}
    if isinstance(exc, DeployConflict):
        body["running"] = exc.running.pk
    return Response(body, status=exc.status_code)


def answered(deploy: Deploy, status_code: int) -> Response:
    """The deploy as asked for; 503 saying it waits when it could not be handed to the task queue."""
    if deploy.waits_for_queue:
        return Response(
            {"error": queue_waiting_message(deploy), "deploy": DeploySerializer(deploy).data},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    return Response(DeploySerializer(deploy).data, status=status_code)


def invalid(errors: Any) -> Response:
    said = "; ".join(f"{field}: {' '.join(str(e) for e in problems)}" for field, problems in errors.items())
    return Response({"error": said, "fields": errors}, status=status.HTTP_400_BAD_REQUEST)


def valid(form_class: type[serializers.Serializer], data: Any) -> dict[str, Any] | Response:
    """The request's fields as `form_class` reads them, or the 400 that names what is wrong."""
    form = form_class(data=data)
    if not form.is_valid():
        return invalid(form.errors)
    return dict(form.validated_data)


def deploys() -> QuerySet[Deploy]:
    return Deploy.objects.select_related("environment__service", "requested_by").order_by("-id")


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's own answers (401, 404, 405, bad JSON...) and the deploy rules' refusals in the API's shape:
    {"error": "..."}."""
    if isinstance(exc, DeployRefused):
        return refused(exc)
    if isinstance(exc, ValidationError) and isinstance(exc.detail, dict):  # e.g. the history's filters
        return invalid(exc.detail)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"error": str(response.data["detail"])}
    return response
