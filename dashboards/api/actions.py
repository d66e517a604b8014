"""The REST API's changes (/api/v1/): what the buttons do, for scripts and the `gantry` CLI. Each reads its
body with a serializer, calls the one deployer function the page's button calls (so the rules of
deploys/rules.py decide, in one place), and answers with what changed or the refusal."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from django.contrib.auth.models import User
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from dashboards.api.answers import REFUSALS, answered, deploys, person, refused, valid
from dashboards.api.serializers import (
    CancelSerializer,
    DecideSerializer,
    DeploySerializer,
    LockSerializer,
    PromoteSerializer,
    ReasonSerializer,
    RollbackSerializer,
    ServiceSerializer,
    UnlockSerializer,
)
from dashboards.api.views import current_deploys, token_may_not_override
from deployer.choices import Decision
from deployer.deploys.actions import deploy_approve, deploy_cancel, deploy_decide, deploy_mark_failed, deploy_reject
from deployer.deploys.request import deploy_promote, deploy_rollback
from deployer.deploys.rules import DeployOptions
from deployer.environments.locks import environment_lock, environment_unlock
from deployer.environments.on_demand import api_tests_request, service_refresh
from deployer.errors import DeployRefused, PermissionRefused, Throttled
from deployer.models import Deploy, Environment, Service
from deployer.selectors import environment_named, service_named


class EmptySerializer(serializers.Serializer):
    """No body needed."""


class _DeployAction(APIView):
    """POST to a deploy: the body read by `form`, then `act` as the signed-in person."""

    form: ClassVar[type[serializers.Serializer]] = EmptySerializer

    def act(self, deploy: Deploy, user: User, data: dict[str, Any]) -> Deploy:
        raise NotImplementedError

    def post(self, request: Request, pk: int) -> Response:
        data = valid(self.form, request.data)
        if isinstance(data, Response):
            return data
        deploy = get_object_or_404(deploys(), pk=pk)
        try:
            deploy = self.act(deploy, person(request), data)
        except DeployRefused as exc:
            return refused(exc)
        return answered(deploy, status.HTTP_200_OK)


@extend_schema(request=None, responses={200: DeploySerializer, **REFUSALS})
class DeployApprove(_DeployAction):
    """A second person approves a deploy awaiting approval: it is queued."""

    def act(self, deploy: Deploy, user: User, data: dict[str, Any]) -> Deploy:
        return deploy_approve(deploy=deploy, user=user)


@extend_schema(request=ReasonSerializer, responses={200: DeploySerializer, **REFUSALS})
class DeployReject(_DeployAction):
    """A second person rejects a deploy awaiting approval (with a reason, told to the requester)."""

    form = ReasonSerializer

    def act(self, deploy: Deploy, user: User, data: dict[str, Any]) -> Deploy:
        deploy_reject(deploy=deploy, user=user, reason=data["reason"])
        deploy.refresh_from_db()
        return deploy


@extend_schema(request=CancelSerializer, responses={200: DeploySerializer, **REFUSALS})
class DeployCancel(_DeployAction):
    """Cancel at once if it has not started; if it runs, between batches, or with {"stop": true} at once
    (the commands running on hosts are stopped; nothing is rolled back)."""

    form = CancelSerializer

    def act(self, deploy: Deploy, user: User, data: dict[str, Any]) -> Deploy:
        return deploy_cancel(deploy=deploy, user=user, stop=data["stop"])


@extend_schema(request=DecideSerializer, responses={200: DeploySerializer, **REFUSALS})
class DeployDecide(_DeployAction):
    """Answer a paused rollout (a failed batch, or an error budget burning between batches): retry / look
    again, skip / go on, or abort and roll back."""

    form = DecideSerializer

    def act(self, deploy: Deploy, user: User, data: dict[str, Any]) -> Deploy:
        return deploy_decide(deploy=deploy, user=user, choice=Decision(data["choice"]))


@extend_schema(request=ReasonSerializer, responses={200: DeploySerializer, **REFUSALS})
class DeployMarkFailed(_DeployAction):
    """An admin ends a deploy whose worker is gone (the environment is free again)."""

    form = ReasonSerializer

    def act(self, deploy: Deploy, user: User, data: dict[str, Any]) -> Deploy:
        deploy_mark_failed(deploy=deploy, user=user, reason=data["reason"])
        deploy.refresh_from_db()
        return deploy


class EnvironmentRollback(APIView):
    """Roll the environment back to an earlier release its hosts keep (and lock it once done)."""

    @extend_schema(request=RollbackSerializer, responses={201: DeploySerializer, **REFUSALS})
    def post(self, request: Request, name: str, environment: str) -> Response:
        data = valid(RollbackSerializer, request.data)
        if isinstance(data, Response):
            return data
        try:
            env = environment_named(name, environment)
            to = get_object_or_404(Deploy, pk=data["to"], environment=env) if data["to"] else None
            deploy = deploy_rollback(environment=env, user=person(request), to=to, confirm_schema=data["force"])
        except DeployRefused as exc:
            return refused(exc)
        return answered(deploy, status.HTTP_201_CREATED)


class EnvironmentPromote(APIView):
    """Deploy to this environment exactly what runs in the one before it (test → prod), with the same rules."""

    @extend_schema(request=PromoteSerializer, responses={201: DeploySerializer, **REFUSALS})
    def post(self, request: Request, name: str, environment: str) -> Response:
        data = valid(PromoteSerializer, request.data)
        if isinstance(data, Response):
            return data
        if data["override_lock"] and request.auth is not None:
            return refused(PermissionRefused(token_may_not_override()))
        options = DeployOptions(
            checklist=tuple(data["checklist"]),
            override_lock=data["override_lock"],
            expected_sha=data["expected_sha"],
            confirm_schema=data["force"],
        )
        try:
            env = environment_named(name, environment)
            deploy = deploy_promote(environment=env, user=person(request), options=options)
        except DeployRefused as exc:
            return refused(exc)
        return answered(deploy, status.HTTP_201_CREATED)


class EnvironmentLock(APIView):
    """Lock the environment: no deploys (but rollbacks) until unlocked or `hours` pass."""

    @extend_schema(request=LockSerializer, responses={200: ServiceSerializer, **REFUSALS})
    def post(self, request: Request, name: str, environment: str) -> Response:
        data = valid(LockSerializer, request.data)
        if isinstance(data, Response):
            return data
        hours = data["hours"]
        try:
            env = environment_named(name, environment)
            expires_at = timezone.now() + timedelta(hours=hours) if hours else None
            environment_lock(env, user=person(request), reason=data["reason"], expires_at=expires_at)
        except DeployRefused as exc:
            return refused(exc)
        return _service_answer(env)


class EnvironmentUnlock(APIView):
    @extend_schema(request=UnlockSerializer, responses={200: ServiceSerializer, **REFUSALS})
    def post(self, request: Request, name: str, environment: str) -> Response:
        data = valid(UnlockSerializer, request.data)
        if isinstance(data, Response):
            return data
        try:
            env = environment_named(name, environment)
            environment_unlock(env, user=person(request), reason=data["reason"])
        except DeployRefused as exc:
            return refused(exc)
        return _service_answer(env)


def _service_answer(environment: Environment) -> Response:
    """The service as the services list shows it (the lock and unlock answers say what runs there too)."""
    service = Service.objects.select_related("team").prefetch_related("environments").get(pk=environment.service_id)
    current = current_deploys(Deploy.objects.filter(environment__service=service))
    return Response(ServiceSerializer(service, context={"current": current}).data)


STARTED = inline_serializer("Started", fields={"said": serializers.CharField()})


class EnvironmentApiTests(APIView):
    """Run the environment's API test suites now, in a worker (the service page's Run now); the results
    appear on the service page and in Slack."""

    @extend_schema(request=None, responses={202: OpenApiResponse(STARTED), **REFUSALS})
    def post(self, request: Request, name: str, environment: str) -> Response:
        try:
            env = environment_named(name, environment)
            api_tests_request(environment=env, user=person(request))
        except DeployRefused as exc:
            return refused(exc)
        return Response({"said": f"running the API tests of {env}"}, status=status.HTTP_202_ACCEPTED)


class ServiceRefresh(APIView):
    """Sync the service's branches and builds now (the Refresh button; once in a while per service)."""

    @extend_schema(request=None, responses={202: OpenApiResponse(STARTED), **REFUSALS})
    def post(self, request: Request, name: str) -> Response:
        try:
            service = service_named(name)
            service_refresh(service=service, user=person(request))
        except Throttled as exc:
            return Response({"said": str(exc)}, status=status.HTTP_202_ACCEPTED)
        except DeployRefused as exc:
            return refused(exc)
        return Response({"said": f"refreshing {service.name}"}, status=status.HTTP_202_ACCEPTED)
