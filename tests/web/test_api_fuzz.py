"""Schema-based fuzzing of the REST API (schemathesis): whatever it sends, Gantry never answers 5xx."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import AbstractBaseUser
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis.strategies import booleans
from knox.models import AuthToken

from deployer.deploys.request import deploy_request
from deployer.models import Environment
from deployer.wsgi import application

pytestmark = [pytest.mark.django_db, pytest.mark.slow]  # a fuzzer: seconds, not milliseconds


@pytest.fixture
def api_schema(environment: Environment, deployer: AbstractBaseUser) -> Iterator[Any]:
    """The published schema, called through Gantry's WSGI app in this test's database (one service, branches).

    Like Django's test client, keep the request signals from closing the test's database connection.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def token(deployer: AbstractBaseUser) -> str:
    return str(AuthToken.objects.create(user=deployer)[1])


KNOWN = {"name": "app", "environment": "test"}


def anchored(case: Any, deploy_id: int) -> Any:
    """The same case aimed at things that exist, so the generated bodies reach the rules behind the lookups."""
    for key in case.path_parameters or {}:
        case.path_parameters[key] = deploy_id if key == "id" else KNOWN.get(key, case.path_parameters[key])
    if isinstance(case.body, dict) and "service" in case.body:
        case.body["service"] = "app"
    return case


def test_no_request_makes_the_api_fail(
    api_schema: Any, token: str, environment: Environment, deployer: AbstractBaseUser
) -> None:
    """Every operation of the schema, with generated (valid and odd) parameters and bodies, as generated and
    aimed at the existing service, environment and a deploy."""
    deploy = deploy_request(environment=environment, ref="main", user=deployer)
    seen: Counter[tuple[str, str, int]] = Counter()
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(), aim=booleans())
        @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def call(case: Any, aim: bool) -> None:
            if aim:
                case = anchored(case, deploy.pk)
            response = case.call(headers={"Authorization": f"Token {token}"})
            seen[(case.method, case.operation.path, response.status_code)] += 1
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} {case.body!r}: {response.status_code}"
            )

        call()
    statuses = {status for (_, _, status) in seen}
    assert sum(seen.values()) > 200 and {200, 400, 404} <= statuses, sorted(seen.items())
