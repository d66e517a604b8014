"""The REST API (/api/v1/): the same functions and rules as the pages, for scripts and other tools.

Token authentication (`Authorization: Token <key>`; django-rest-knox keeps only
digests; keys are made in the admin or with `manage.py api_token USER`) or the
browser's session. A refusal
answers with the domain's status (400 bad request, 403 permission, 409 busy
with the running deploy's id, 423 locked) and `{"error": "..."}` saying why.
The schema is at /api/schema/ (OpenAPI 3).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Max, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from dashboards.api import token_scheme  # noqa: F401 (registers how the schema says to send a token)
from dashboards.api.serializers import (
    BranchSerializer,
    BuildSerializer,
    CancelSerializer,
    DeployFilterSerializer,
    DeployRequestSerializer,
    DeploySerializer,
    ErrorSerializer,
    LockSerializer,
    RollbackSerializer,
    ServiceSerializer,
    UnlockSerializer,
)
from deployer.choices import DeployStatus
from deployer.deploys.actions import deploy_approve, deploy_cancel
from deployer.deploys.request import deploy_request, deploy_rollback, queue_waiting_message
from deployer.deploys.rules import DeployOptions
from deployer.environments.locks import environment_lock, environment_unlock
from deployer.errors import DeployConflict, DeployRefused, PermissionRefused
from deployer.models import Branch, Build, Deploy, Environment, Service
from deployer.selectors import environment_named, service_named

REFUSALS = {
    400: OpenApiResponse(ErrorSerializer, description="Bad request, or a rule refused it (the error says which)"),
    403: OpenApiResponse(ErrorSerializer, description="Not allowed here (the error names the grant needed)"),
    404: OpenApiResponse(ErrorSerializer, description="No such service, environment or deploy"),
    409: OpenApiResponse(ErrorSerializer, description="The environment is busy (running: the deploy holding it)"),
    423: OpenApiResponse(ErrorSerializer, description="The environment is locked"),
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


def invalid(errors: dict[str, Any]) -> Response:
    said = "; ".join(f"{field}: {' '.join(str(e) for e in problems)}" for field, problems in errors.items())
    return Response({"error": said, "fields": errors}, status=status.HTTP_400_BAD_REQUEST)


def _deploys() -> QuerySet[Deploy]:
    return Deploy.objects.select_related("environment__service", "requested_by").order_by("-id")


class ServiceList(generics.ListAPIView):
    """Every service with its environments: lock state and the deploy that runs there."""

    serializer_class = ServiceSerializer
    pagination_class = Page

    def get_queryset(self) -> QuerySet[Service]:
        return Service.objects.select_related("team").prefetch_related("environments").order_by("name")

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "current": _current_deploys(Deploy.objects.all())}


def _current_deploys(deploys: QuerySet[Deploy]) -> dict[int, int]:
    """For each environment of `deploys`: the last deploy whose release went live (what runs there now)."""
    live = (
        deploys.filter(status__in=DeployStatus.live())
        .values("environment_id")
        .annotate(latest=Max("id"))
        .values_list("environment_id", "latest")
    )
    return dict(live)


class BranchList(generics.ListAPIView):
    """A service's branches as last synced from GitHub (newest commit first)."""

    serializer_class = BranchSerializer
    pagination_class = Page

    def get_queryset(self) -> QuerySet[Branch]:
        service = service_named(self.kwargs["name"])
        return Branch.objects.filter(service=service).order_by("-committed_at", "name")


class BuildList(generics.ListAPIView):
    """A service's CI builds as last synced from Jenkins (newest first)."""

    serializer_class = BuildSerializer
    pagination_class = Page

    def get_queryset(self) -> QuerySet[Build]:
        service = service_named(self.kwargs["name"])
        return Build.objects.filter(service=service).order_by("-started_at", "-number")


@extend_schema(
    parameters=[
        OpenApiParameter("service", OpenApiTypes.STR, description="only this service's deploys"),
        OpenApiParameter("environment", OpenApiTypes.STR, description="only deploys to this environment"),
        OpenApiParameter("status", OpenApiTypes.STR, enum=DeployStatus.values, description="only in this state"),
    ]
)
class DeployList(generics.ListAPIView):
    """Deploys, newest first; POST requests one (same rules as the Deploy button)."""

    serializer_class = DeploySerializer
    pagination_class = Page

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        filters = DeployFilterSerializer(data=request.query_params)
        if not filters.is_valid():  # a 400 naming the parameter, never a 500 from the database
            return invalid(filters.errors)
        self.filters = filters.validated_data
        return super().list(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Deploy]:
        deploys = _deploys()
        query = getattr(self, "filters", {})
        if query.get("service"):
            deploys = deploys.filter(environment__service__name=query["service"])
        if query.get("environment"):
            deploys = deploys.filter(environment__name=query["environment"])
        if query.get("status") in DeployStatus.values:
            deploys = deploys.filter(status=query["status"])
        return deploys

    @extend_schema(request=DeployRequestSerializer, responses={201: DeploySerializer, **REFUSALS})
    def post(self, request: Request) -> Response:
        form = DeployRequestSerializer(data=request.data)
        if not form.is_valid():
            return invalid(form.errors)
        data = form.validated_data
        try:
            if data["freeze_override"] and request.auth is not None:
                # A token is a machine's (CI) or lives for months: going through a freeze takes a person.
                raise PermissionRefused(
                    "deploying in a freeze window takes an admin signed in (the plan page, or the API with a "
                    "browser session), not a token"
                )
            environment = environment_named(data["service"], data["environment"])
            deploy = deploy_request(
                environment=environment,
                ref=data["ref"],
                user=person(request),
                options=DeployOptions(confirm_schema=data["force"], freeze_override=data["freeze_override"]),
            )
        except DeployRefused as exc:
            return refused(exc)
        return answered(deploy, status.HTTP_201_CREATED)


class DeployDetail(generics.RetrieveAPIView):
    serializer_class = DeploySerializer
    queryset = _deploys()


class _DeployAction(APIView):
    """POST to a deploy: approve or cancel it."""

    def act(self, deploy: Deploy, request: Request) -> Deploy:
        raise NotImplementedError

    @extend_schema(request=None, responses={200: DeploySerializer, **REFUSALS})
    def post(self, request: Request, pk: int) -> Response:
        deploy = get_object_or_404(_deploys(), pk=pk)
        try:
            deploy = self.act(deploy, request)
        except DeployRefused as exc:
            return refused(exc)
        return answered(deploy, status.HTTP_200_OK)


class DeployApprove(_DeployAction):
    """A second person approves a deploy awaiting approval."""

    def act(self, deploy: Deploy, request: Request) -> Deploy:
        return deploy_approve(deploy=deploy, user=person(request))


class DeployCancel(APIView):
    """Cancel at once if it has not started; if it runs, between batches, or with {"stop": true} at once
    (the commands running on hosts are stopped; nothing is rolled back)."""

    @extend_schema(request=CancelSerializer, responses={200: DeploySerializer, **REFUSALS})
    def post(self, request: Request, pk: int) -> Response:
        form = CancelSerializer(data=request.data)
        if not form.is_valid():
            return invalid(form.errors)
        deploy = get_object_or_404(_deploys(), pk=pk)
        try:
            deploy = deploy_cancel(deploy=deploy, user=person(request), stop=form.validated_data["stop"])
        except DeployRefused as exc:
            return refused(exc)
        return answered(deploy, status.HTTP_200_OK)


class EnvironmentRollback(APIView):
    """Roll the environment back to an earlier release its hosts keep (and lock it once done)."""

    @extend_schema(request=RollbackSerializer, responses={201: DeploySerializer, **REFUSALS})
    def post(self, request: Request, name: str, environment: str) -> Response:
        form = RollbackSerializer(data=request.data)
        if not form.is_valid():
            return invalid(form.errors)
        target = form.validated_data["to"]
        try:
            env = environment_named(name, environment)
            to = get_object_or_404(Deploy, pk=target, environment=env) if target else None
            deploy = deploy_rollback(
                environment=env, user=person(request), to=to, confirm_schema=form.validated_data["force"]
            )
        except DeployRefused as exc:
            return refused(exc)
        return answered(deploy, status.HTTP_201_CREATED)


class EnvironmentLock(APIView):
    @extend_schema(request=LockSerializer, responses={200: ServiceSerializer, **REFUSALS})
    def post(self, request: Request, name: str, environment: str) -> Response:
        form = LockSerializer(data=request.data)
        if not form.is_valid():
            return invalid(form.errors)
        hours = form.validated_data["hours"]
        try:
            env = environment_named(name, environment)
            environment_lock(
                env,
                user=person(request),
                reason=form.validated_data["reason"],
                expires_at=timezone.now() + timedelta(hours=hours) if hours else None,
            )
        except DeployRefused as exc:
            return refused(exc)
        return _service_answer(env)


class EnvironmentUnlock(APIView):
    @extend_schema(request=UnlockSerializer, responses={200: ServiceSerializer, **REFUSALS})
    def post(self, request: Request, name: str, environment: str) -> Response:
        form = UnlockSerializer(data=request.data)
        if not form.is_valid():
            return invalid(form.errors)
        try:
            env = environment_named(name, environment)
            environment_unlock(env, user=person(request), reason=form.validated_data["reason"])
        except DeployRefused as exc:
            return refused(exc)
        return _service_answer(env)


def _service_answer(environment: Environment) -> Response:
    """The service as the services list shows it (the lock and unlock answers say what runs there too)."""
    service = Service.objects.select_related("team").prefetch_related("environments").get(pk=environment.service_id)
    current = _current_deploys(Deploy.objects.filter(environment__service=service))
    return Response(ServiceSerializer(service, context={"current": current}).data)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's own answers (401, 404, 405, bad JSON...) and the deploy rules' refusals in the API's shape:
    {"error": "..."}."""
    if isinstance(exc, DeployRefused):
        return refused(exc)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"error": str(response.data["detail"])}
    return response
