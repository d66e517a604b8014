"""The REST API's reads (/api/v1/): services, environments, branches, builds, deploys, a deploy's log, the
plan, history, and the deploy request itself (POST to the deploy list). What changes things is in
api/actions.py; both use the same functions and rules as the pages.

Token authentication (`Authorization: Bearer <token>`, a personal token made on /me/; django-rest-knox keeps
only digests) or the browser's session. A refusal answers with the domain's status (400 bad request, 403
permission, 409 busy with the running deploy's id, 423 locked or frozen) and `{"error": "..."}` saying why.
The schema is at /api/schema/ (OpenAPI 3), read at /api/docs/.
"""

from __future__ import annotations

from typing import Any

from django.db.models import F, Max, QuerySet
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from dashboards.api import token_scheme  # noqa: F401 (registers how the schema says to send a token)
from dashboards.api.answers import REFUSALS, Page, answered, deploys, invalid, person, refused, valid
from dashboards.api.serializers import (
    AuditEntrySerializer,
    BranchSerializer,
    BuildSerializer,
    DeployFilterSerializer,
    DeployRequestSerializer,
    DeploySerializer,
    EnvironmentDetailSerializer,
    LogPageSerializer,
    LogQuerySerializer,
    PlanQuerySerializer,
    PlanSerializer,
    ServiceSerializer,
    TagSerializer,
)
from dashboards.history import HistoryFilter
from deployer.choices import DeployStatus
from deployer.deploys.plan import Plan, deploy_plan
from deployer.deploys.request import deploy_request
from deployer.deploys.rules import DeployOptions
from deployer.environments.access import access_for
from deployer.errors import DeployRefused, PermissionRefused
from deployer.models import AuditEntry, Branch, Build, Deploy, Environment, Service, Tag
from deployer.selectors import deploy_log_after, environment_named, service_named


def token_may_not_override() -> str:
    # A token is a machine's (CI) or lives for months: going through a lock or a freeze takes a person.
    return (
        "deploying through a lock or in a freeze window takes an admin signed in (the plan page, or the API with "
        "a browser session), not a token"
    )


def _services() -> QuerySet[Service]:
    return Service.objects.select_related("team").prefetch_related("environments").order_by("name")


class ServiceList(generics.ListAPIView):
    """Every service with its environments: lock state and the deploy that runs there."""

    serializer_class = ServiceSerializer
    pagination_class = Page

    def get_queryset(self) -> QuerySet[Service]:
        return _services()

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "current": current_deploys(Deploy.objects.all())}


class ServiceDetail(generics.RetrieveAPIView):
    """One service with its environments."""

    serializer_class = ServiceSerializer
    lookup_field = "name"

    def get_object(self) -> Service:
        return get_object_or_404(_services(), name=self.kwargs["name"])

    def get_serializer_context(self) -> dict[str, Any]:
        mine = Deploy.objects.filter(environment__service__name=self.kwargs.get("name", ""))
        return {**super().get_serializer_context(), "current": current_deploys(mine)}


class EnvironmentDetail(generics.RetrieveAPIView):
    """One environment: its lock, freeze windows, checklist (what a deploy must tick), hosts, what runs."""

    serializer_class = EnvironmentDetailSerializer

    @extend_schema(operation_id="v1_environment_retrieve")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_object(self) -> Environment:
        return environment_named(self.kwargs["name"], self.kwargs["environment"])

    def get_serializer_context(self) -> dict[str, Any]:
        mine = Deploy.objects.filter(
            environment__service__name=self.kwargs.get("name", ""), environment__name=self.kwargs.get("environment")
        )
        return {**super().get_serializer_context(), "current": current_deploys(mine)}


def current_deploys(of: QuerySet[Deploy]) -> dict[int, int]:
    """For each environment of `of`: the last deploy whose release went live (what runs there now)."""
    live = (
        of.filter(status__in=DeployStatus.live())
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


class TagList(generics.ListAPIView):
    """A service's tags as last synced (newest commit first); each deploys by its name."""

    serializer_class = TagSerializer
    pagination_class = Page

    def get_queryset(self) -> QuerySet[Tag]:
        service = service_named(self.kwargs["name"])
        return Tag.objects.filter(service=service).order_by(F("committed_at").desc(nulls_last=True), "-name")


class BuildList(generics.ListAPIView):
    """A service's CI builds as last synced (newest first)."""

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
        found = deploys()
        query = getattr(self, "filters", {})
        if query.get("service"):
            found = found.filter(environment__service__name=query["service"])
        if query.get("environment"):
            found = found.filter(environment__name=query["environment"])
        if query.get("status") in DeployStatus.values:
            found = found.filter(status=query["status"])
        return found

    @extend_schema(request=DeployRequestSerializer, responses={201: DeploySerializer, **REFUSALS})
    def post(self, request: Request) -> Response:
        data = valid(DeployRequestSerializer, request.data)
        if isinstance(data, Response):
            return data
        try:
            if (data["freeze_override"] or data["override_lock"]) and request.auth is not None:
                raise PermissionRefused(token_may_not_override())
            environment = environment_named(data["service"], data["environment"])
            deploy = deploy_request(
                environment=environment,
                ref=data["ref"],
                user=person(request),
                options=DeployOptions(
                    confirm_schema=data["force"],
                    freeze_override=data["freeze_override"],
                    checklist=tuple(data["checklist"]),
                    override_lock=data["override_lock"],
                    expected_sha=data["expected_sha"],
                ),
            )
        except DeployRefused as exc:
            return refused(exc)
        return answered(deploy, status.HTTP_201_CREATED)


class DeployDetail(generics.RetrieveAPIView):
    serializer_class = DeploySerializer
    queryset = deploys()


class DeployLogView(APIView):
    """The deploy's log lines after `since` (a follower asks again with `next` until the deploy is finished)."""

    @extend_schema(parameters=[LogQuerySerializer], responses={200: LogPageSerializer, **REFUSALS})
    def get(self, request: Request, pk: int) -> Response:
        query = valid(LogQuerySerializer, request.query_params)
        if isinstance(query, Response):
            return query
        deploy = get_object_or_404(deploys(), pk=pk)
        limit = query["limit"]
        lines = deploy_log_after(deploy, query["since"], limit=limit + 1)
        more, lines = len(lines) > limit, lines[:limit]
        body = {"lines": lines, "next": lines[-1].pk if lines else query["since"], "more": more, "deploy": deploy}
        return Response(LogPageSerializer(body).data)


class PlanView(APIView):
    """What a deploy of `ref` (or a promotion) would do and whether the rules allow it now: the plan page's
    checks, batches, ETA, commits and migrations. Asking changes nothing."""

    @extend_schema(parameters=[PlanQuerySerializer], responses={200: PlanSerializer, **REFUSALS})
    def get(self, request: Request, name: str, environment: str) -> Response:
        query = valid(PlanQuerySerializer, request.query_params)
        if isinstance(query, Response):
            return query
        try:
            env = environment_named(name, environment)
            plan = deploy_plan(environment=env, ref=query["ref"], user=person(request), promote=query["promote"])
        except DeployRefused as exc:
            return refused(exc)
        return Response(PlanSerializer(plan_fields(plan)).data)


def plan_fields(plan: Plan) -> dict[str, object]:
    changes = plan.changes
    return {
        "service": plan.environment.service.name,
        "environment": plan.environment.name,
        "ref": plan.ref,
        "sha": plan.sha,
        "current_deploy": plan.current.pk if plan.current else None,
        "current_sha": plan.current.sha if plan.current else "",
        "promoted_from": plan.promoted_from.pk if plan.promoted_from else None,
        "blocked": plan.blocked,
        "checks": plan.checks,
        "batches": plan.batches,
        "eta_seconds": plan.eta_seconds,
        "eta_basis": plan.eta_basis,
        "commits_ahead": changes.ahead,
        "commits_behind": changes.behind,
        "commits": changes.commits,
        "migrations": changes.migrations,
        "needs_confirmation": changes.needs_confirmation,
        "config_changes": plan.config_changes,
        "build": plan.build,
        "secrets": plan.secrets,
        "analysis": plan.analysis,
        "checklist": list(plan.environment.checklist or []),
    }


MeSerializer = inline_serializer(
    "Me", fields={"username": serializers.CharField(), "admin": serializers.BooleanField()}
)


class MeView(APIView):
    """Who the token (or session) is: `gantry login` checks a token with it."""

    @extend_schema(responses={200: MeSerializer})
    def get(self, request: Request) -> Response:
        user = person(request)
        return Response({"username": user.get_username(), "admin": access_for(user).is_admin})


class HistoryList(generics.ListAPIView):
    """The audit log, newest first, with the history page's filters: who did what, where, and how it ended."""

    serializer_class = AuditEntrySerializer
    pagination_class = Page
    filter_backends = [DjangoFilterBackend]
    filterset_class = HistoryFilter

    def get_queryset(self) -> QuerySet[AuditEntry]:
        return AuditEntry.objects.order_by("-at", "-id")
