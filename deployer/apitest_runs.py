"""Running a service's API test suites against an environment, and keeping the results.

Variables a suite can use: base_url (the environment's), host and host_base_url
(per host), sha, ref, service, environment, deploy_id, the environment's
`test_variables`, and secrets as {{secret.NAME}} — read from the worker's
environment variable GANTRY_SECRET_NAME, never stored in the catalog, and
masked in every stored result.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from deployer import gitrepo
from deployer.apitest_files import TESTS_FILE, SuiteFileError, suites_parse
from deployer.apitest_schema import SuiteSpec, variables_order
from deployer.apitests import MissingVariable, StepResult, SuiteResult, render, suite_run
from deployer.models import ApiTestRun, ApiTestStep, Deploy, Environment

SECRET_PREFIX = "GANTRY_SECRET_"
MASK = "••••"


def secrets() -> dict[str, str]:
    return {
        f"secret.{name.removeprefix(SECRET_PREFIX)}": value
        for name, value in os.environ.items()
        if name.startswith(SECRET_PREFIX) and value
    }


def suites_run(
    environment: Environment, *, deploy: Deploy | None, trigger: str = ApiTestRun.Trigger.DEPLOY, sha: str = ""
) -> list[ApiTestRun]:
    """Run every suite of the environment's service; store and return the runs (empty: no suites)."""
    hidden = secrets()
    try:
        suites = suites_for(environment, deploy.sha if deploy else sha)
    except SuiteFileError as exc:
        problem = StepResult("load the suites", "", "", False, error=str(exc))
        return [_store(environment, deploy, trigger, SuiteResult(TESTS_FILE, "environment", [problem]), hidden)]
    if not suites:
        return []
    runs = []
    try:
        base = _variables(environment, deploy, hidden)
        if deploy is None and sha:
            base["sha"] = sha  # monitoring: what runs there now
    except (ValueError, MissingVariable) as exc:
        problem = StepResult("variables", "", "", False, error=f"test_variables of {environment}: {exc}")
        return [
            _store(environment, deploy, trigger, SuiteResult(name, "environment", [problem]), hidden) for name in suites
        ]
    for name, suite in suites.items():
        for target, variables in _targets(environment, suite, base):
            result = suite_run(name, suite, variables, target=target)
            runs.append(_store(environment, deploy, trigger, result, hidden))
    return runs


def suites_for(environment: Environment, sha: str) -> dict[str, SuiteSpec]:
    """The repository's .gantry/tests.yml at `sha` when it has one (it wins), else the catalog's suites."""
    service = environment.service
    if sha:
        try:
            text = gitrepo.file_at(service.name, sha, TESTS_FILE)
        except gitrepo.GitError:
            text = None  # no mirror here: the catalog's suites
        if text is not None:
            return suites_parse(text)
    return {name: SuiteSpec.model_validate(data) for name, data in service.api_tests.items()}


def summary(runs: list[ApiTestRun]) -> str:
    failed = [run for run in runs if not run.ok]
    if not failed:
        return f"{len(runs)} API test run{'s' if len(runs) != 1 else ''} passed"
    parts = []
    for run in failed:
        bad = run.steps.filter(ok=False).values_list("name", flat=True)
        where = "" if run.target == "environment" else f" on {run.target}"
        parts.append(f"{run.suite}{where}: {', '.join(bad)}")
    return "post-deploy API tests failed: " + "; ".join(parts)


def _variables(environment: Environment, deploy: Deploy | None, hidden: dict[str, str]) -> dict[str, str]:
    values = {
        "service": environment.service.name,
        "environment": environment.name,
        "base_url": environment.base_url.rstrip("/"),
        "sha": deploy.sha if deploy else "",
        "ref": deploy.ref if deploy else "",
        "deploy_id": str(deploy.pk) if deploy else "",
        **hidden,
    }
    extra = dict(environment.test_variables or {})
    for name in variables_order(extra):
        values[name] = render(extra[name], values)
    return values


def _targets(environment: Environment, suite: SuiteSpec, base: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
    targets = []
    if environment.base_url:
        targets.append(("environment", base))
    if (suite.per_host or not environment.base_url) and environment.host_base_url:
        for host in environment.hosts.all():
            url = environment.host_base_url.format(address=host.address).rstrip("/")
            per_host = {**base, "host": host.address, "host_base_url": url}
            if not environment.base_url:
                per_host["base_url"] = url
            targets.append((host.address, per_host))
    return targets or [("environment", base)]  # no URL at all: the steps say which variable is missing


def _mask(text: str, hidden: dict[str, str]) -> str:
    for value in hidden.values():
        if len(value) >= 4:
            text = text.replace(value, MASK)
    return text


@transaction.atomic
def _store(
    environment: Environment, deploy: Deploy | None, trigger: str, result: SuiteResult, hidden: dict[str, str]
) -> ApiTestRun:
    run = ApiTestRun.objects.create(
        environment=environment, deploy=deploy, suite=result.suite, target=result.target, trigger=trigger, ok=result.ok
    )
    ApiTestStep.objects.bulk_create(
        ApiTestStep(
            run=run,
            position=position,
            name=step.name,
            method=step.method,
            url=_mask(step.url, hidden),
            status=step.status,
            elapsed_ms=step.elapsed_ms,
            ok=step.ok,
            error=_mask(step.error, hidden),
            # Failed assertions first: that is what a reader looks for.
            assertions=[
                {key: _mask(str(value), hidden) if key != "ok" else value for key, value in asdict(a).items()}
                for a in sorted(step.assertions, key=lambda a: a.ok)
            ],
            response_excerpt=_mask(step.response_excerpt, hidden),
        )
        for position, step in enumerate(result.steps)
    )
    return run


def environment_test(environment_id: int, trigger: str) -> list[ApiTestRun]:
    """Run the suites against what runs in the environment now (monitoring, or a person's request)."""
    environment = Environment.objects.select_related("service").get(pk=environment_id)
    current = (
        Deploy.objects.filter(environment=environment, status="succeeded").order_by("-id").only("sha", "ref").first()
    )
    return suites_run(environment, deploy=None, trigger=trigger, sha=current.sha if current else "")


def monitors_due() -> list[int]:
    """Environments whose monitoring interval has passed since their last scheduled run."""
    due = []
    now = timezone.now()
    for environment in Environment.objects.filter(monitor_minutes__gt=0).select_related("service"):
        if not environment.service.api_tests and not environment.base_url and not environment.host_base_url:
            continue
        last = (
            ApiTestRun.objects.filter(environment=environment, trigger=ApiTestRun.Trigger.SCHEDULE)
            .order_by("-id")
            .values_list("started_at", flat=True)
            .first()
        )
        if last is None or last <= now - timedelta(minutes=environment.monitor_minutes):
            due.append(environment.pk)
    return due


def recent_runs(environment: Environment, limit: int = 20) -> list[ApiTestRun]:
    """The newest runs, oldest first (the pass/fail strip reads left to right)."""
    return list(reversed(ApiTestRun.objects.filter(environment=environment).order_by("-id")[:limit]))
