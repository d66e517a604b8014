"""Reads for the pages: a fixed number of queries each, whatever the catalog size."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Max, Prefetch, QuerySet

from deployer.choices import DeployStatus
from deployer.models import Branch, Deploy, DeployLog, Environment, Service


@dataclass(frozen=True)
class EnvironmentState:
    """What runs in an environment now and what is under way there."""

    environment: Environment
    current: Deploy | None
    active: Deploy | None


def _latest_by_environment(deploys: QuerySet[Deploy]) -> dict[int, Deploy]:
    """The newest deploy of each environment in `deploys` (one query)."""
    latest: dict[int, Deploy] = {}
    for deploy in deploys.select_related("requested_by").order_by("environment_id", "-id"):
        latest.setdefault(deploy.environment_id, deploy)
    return latest


def environment_states(environments: list[Environment]) -> list[EnvironmentState]:
    ids = [env.pk for env in environments]
    # Only the newest succeeded deploy per environment is needed; DISTINCT ON
    # is PostgreSQL-only, so fetch the ids first and then the rows.
    current_ids = [
        row["max_id"]
        for row in Deploy.objects.filter(environment_id__in=ids, status=DeployStatus.SUCCEEDED)
        .values("environment_id")
        .annotate(max_id=Max("id"))
    ]
    current = _latest_by_environment(Deploy.objects.filter(pk__in=current_ids))
    active = _latest_by_environment(Deploy.objects.active().filter(environment_id__in=ids))
    return [EnvironmentState(env, current.get(env.pk), active.get(env.pk)) for env in environments]


def services_overview() -> list[tuple[Service, list[EnvironmentState]]]:
    services = list(
        Service.objects.select_related("team").prefetch_related(
            Prefetch("environments", queryset=Environment.objects.order_by("position", "name"))
        )
    )
    states = {s.environment.pk: s for s in environment_states([e for s in services for e in s.environments.all()])}
    return [(service, [states[e.pk] for e in service.environments.all()]) for service in services]


def service_environments(service: Service) -> list[EnvironmentState]:
    environments = list(service.environments.order_by("position", "name").prefetch_related("hosts"))
    return environment_states(environments)


def service_branches(service: Service) -> list[Branch]:
    """The default branch first, then the others by most recent commit."""
    branches = list(service.branches.order_by("-committed_at", "name"))
    branches.sort(key=lambda b: b.name != service.default_branch)
    return branches


def deploy_log_after(deploy: Deploy, after: int) -> list[DeployLog]:
    return list(deploy.log_lines.filter(pk__gt=after).order_by("pk"))


def deploy_history() -> QuerySet[Deploy]:
    return Deploy.objects.select_related("environment__service", "requested_by").order_by("-id")
