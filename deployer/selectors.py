"""Reads for the pages: a fixed number of queries each, whatever the catalog size."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from django.db.models import Case, F, IntegerField, Max, Q, QuerySet, Value, When
from django.utils import timezone

from deployer.choices import DeployStatus, HostStatus
from deployer.deploys.error_budget import budget_badges
from deployer.deploys.gates import Gate, shown_gate
from deployer.deploys.required_checks import verdicts_of
from deployer.environments.freezes import freeze_now
from deployer.environments.host_keys import KeyWaiting
from deployer.errors import DeployRefused, NotFound
from deployer.lib.refs import newest_first_key
from deployer.models import (
    ApiTestRun,
    Branch,
    Build,
    Deploy,
    DeployHost,
    DeployLog,
    Environment,
    Service,
    SyncState,
    Tag,
    Team,
)
from deployer.sources.checks import Verdict


@dataclass(frozen=True)
class EnvironmentState:
    """What runs in an environment now, what is under way there, and the build of what runs."""

    environment: Environment
    current: Deploy | None
    active: Deploy | None
    build: Build | None = None
    promote_from: Environment | None = None  # the environment before it, when it runs something else
    next_name: str = ""  # the environment after it (for "N commits ahead of prod")
    deploy_url: str = ""  # filled in by the page that shows Deploy buttons
    plan_url: str = ""  # the pre-flight plan a Deploy button leads to
    can_deploy: bool = True  # for the person looking (filled in by the page)
    refusal: str = ""  # why they may not deploy here
    lock: str = ""  # "locked by olga 5 minutes ago: DB migration"
    freezes: list[str] = field(default_factory=list)  # freeze windows open now or within a week, soonest first
    frozen: bool = False  # the first of them is open now
    lease: str = ""  # "leased by dana for feature/x until 14:20"
    lease_mine: bool = False
    rollback_to: list[Deploy] = field(default_factory=list)  # earlier releases the hosts keep, newest first
    api_runs: list[ApiTestRun] = field(default_factory=list)  # the pass/fail strip, oldest first
    behind: list[str] = field(default_factory=list)  # hosts the release that runs here never reached, and why
    keys_waiting: list[KeyWaiting] = field(default_factory=list)  # host keys its hosts offered, untrusted


def _behind(environment_of: dict[int, int]) -> dict[int, list[str]]:
    """For each environment (by the id of the deploy that runs there): the hosts that deploy skipped."""
    found: dict[int, list[str]] = {}
    rows = DeployHost.objects.filter(deploy_id__in=list(environment_of), status=HostStatus.SKIPPED)
    for deploy_id, address in rows.values_list("deploy_id", "address"):
        found.setdefault(environment_of[deploy_id], []).append(address)
    return found


def hosts_behind(environment: Environment, current: Deploy | None) -> list[str]:
    """The hosts the release that runs in an environment never reached, each with why: skipped (its record's
    note), or new since and not yet brought up by a deploy (a join, or the next deploy; out of the load
    balancer until its release is healthy)."""
    if current is None:
        return []
    records = DeployHost.objects.filter(deploy=current)
    skipped = records.filter(status=HostStatus.SKIPPED).values_list("address", "message")
    behind = [f"{address}: {message}" for address, message in skipped]
    reached: set[int | None] = set(records.values_list("host_id", flat=True))
    since = DeployHost.objects.filter(deploy__environment=environment, deploy_id__gt=current.pk).order_by("pk")
    rows = list(since.select_related("deploy"))
    reached |= {row.host_id for row in rows if row.status == HostStatus.LIVE}  # joined (or live in a later deploy)
    latest = {row.host_id: row for row in rows}  # each host's newest record since
    for host in environment.hosts.all():
        if host.pk in reached:
            continue
        if (record := latest.get(host.pk)) is None:
            behind.append(f"{host}: new here; it joins at the next deploy")
        elif record.deploy.is_active:
            behind.append(f"{host}: new here; being deployed now (deploy #{record.deploy_id})")
        elif record.status != HostStatus.LIVE:
            behind.append(f"{host}: new here; deploy #{record.deploy_id} did not bring it up: {record.message}")
    return behind


def _latest_by_environment(deploys: QuerySet[Deploy]) -> dict[int, Deploy]:
    """The newest deploy of each environment in `deploys` (one query)."""
    latest: dict[int, Deploy] = {}
    for deploy in deploys.select_related("requested_by").order_by("environment_id", "-id"):
        latest.setdefault(deploy.environment_id, deploy)
    return latest


def environment_states(environments: list[Environment]) -> list[EnvironmentState]:
    """States of `environments` (which must be ordered by service, then position): four queries."""
    ids = [env.pk for env in environments]
    # DISTINCT ON is PostgreSQL-only: take the newest live id per environment, then the rows.
    current_ids = (
        Deploy.objects.filter(environment_id__in=ids, status__in=DeployStatus.live())
        .values("environment_id")
        .annotate(max_id=Max("id"))
        .values("max_id")
    )
    current = _latest_by_environment(Deploy.objects.filter(pk__in=current_ids))
    active = _latest_by_environment(Deploy.objects.active().filter(environment_id__in=ids))
    builds = Build.objects.newest_of({env.service_id for env in environments}, {d.sha for d in current.values()})
    states = []
    for index, env in enumerate(environments):
        here = current.get(env.pk)
        before = environments[index - 1] if index and environments[index - 1].service_id == env.service_id else None
        after = environments[index + 1] if index + 1 < len(environments) else None
        before_sha = current[before.pk].sha if before and before.pk in current else None
        states.append(
            EnvironmentState(
                environment=env,
                current=here,
                active=active.get(env.pk),
                build=builds.get((env.service_id, here.sha)) if here else None,
                promote_from=before if before_sha and (here is None or here.sha != before_sha) else None,
                next_name=after.name if after and after.service_id == env.service_id else "",
            )
        )
    return states


# The matrix builds thousands of these per request: NamedTuples are much cheaper
# to create than (frozen) dataclasses.
class DeploySummary(NamedTuple):
    pk: int
    ref: str
    sha: str
    status: str
    finished_at: datetime | None
    requested_by: str


class BuildSummary(NamedTuple):
    number: int
    result: str


class MatrixCell(NamedTuple):
    environment: str
    current: DeploySummary | None
    active: DeploySummary | None
    build: BuildSummary | None
    ahead_of_next: int | None
    next_name: str
    promote_from: str  # the environment before this one, when it runs something else
    lock: str = ""  # "locked by olga: DB migration" while the environment is locked
    lease: str = ""  # "dana (feature/x) until 14:20" while someone holds the lease
    freeze: str = ""  # the freeze window open now
    behind: tuple[str, ...] = ()  # hosts the release that runs here never reached (skipped: dead, or on request)


@dataclass(frozen=True)
class MatrixRow:
    service: str
    team: str
    cells: list[MatrixCell | None]
    budget: str = ""  # "budget 38 %", "budget spent", "burning": its SLO's error budget
    budget_bad: bool = False


@dataclass(frozen=True)
class Matrix:
    columns: list[str]
    rows: list[MatrixRow]
    teams: list[str] = field(default_factory=list)
    total: int = 0  # services that match the filter (rows holds a page of them)


_SUMMARY_FIELDS = ("environment_id", "pk", "ref", "sha", "status", "finished_at", "requested_by__username")


def _summaries(deploys: QuerySet[Deploy]) -> dict[int, DeploySummary]:
    """The newest deploy of each environment, as plain rows (no model instances: this runs for every cell)."""
    latest: dict[int, DeploySummary] = {}
    for row in deploys.order_by("environment_id", "-id").values_list(*_SUMMARY_FIELDS, named=True):
        if row.environment_id not in latest:
            latest[row.environment_id] = DeploySummary(
                row.pk, row.ref, row.sha, row.status, row.finished_at, row.requested_by__username or ""
            )
    return latest


def services_matrix(
    *, team: str = "", query: str = "", first_teams: frozenset[int] = frozenset(), window: slice | None = None
) -> Matrix:
    """Services × environments, filtered by team name and a substring of the service name, the services of
    `first_teams` first, then by name; only those in `window` (all without one): seven queries."""
    services = Service.objects.all()
    if team:
        services = services.filter(team__name=team)
    if query:
        services = services.filter(name__icontains=query)
    total = services.count()
    ordered = services.annotate(
        mine=Case(When(team_id__in=first_teams, then=Value(0)), default=Value(1), output_field=IntegerField())
    ).order_by("mine", "name")
    rows_query = ordered[window] if window else ordered
    service_rows: list[Any] = list(rows_query.values_list("pk", "name", "team__name", named=True))
    # The whole matrix filters by a subquery: a list of 15,000 ids costs more than it saves; a page by its ids.
    if window:
        environments = Environment.objects.filter(service_id__in=[row.pk for row in service_rows])
    else:
        environments = Environment.objects.filter(service__in=services.values("pk"))
    envs: list[Any] = list(
        environments.order_by("service_id", "position", "name").values_list(
            "pk",
            "service_id",
            "name",
            "position",
            "ahead_of_next",
            "locked_at",
            "lock_expires_at",
            "lock_reason",
            "freeze",
            "leased_by__username",
            "lease_ref",
            "lease_expires_at",
            named=True,
        )
    )
    now = timezone.now()
    newest = (
        Deploy.objects.filter(environment__in=environments.values("pk"), status__in=DeployStatus.live())
        .values("environment_id")
        .annotate(max_id=Max("id"))
        .values("max_id")
    )
    current = _summaries(Deploy.objects.filter(pk__in=newest))
    active = _summaries(Deploy.objects.active())  # a handful at most, whatever the filter
    builds = _build_summaries({d.sha for d in current.values()})
    behind = _behind({summary.pk: env_id for env_id, summary in current.items()})
    columns: dict[str, int] = {}
    for env in sorted(envs, key=lambda e: e.position):
        columns.setdefault(env.name, len(columns))
    cells: dict[int, list[MatrixCell | None]] = {row.pk: [None] * len(columns) for row in service_rows}
    for index, env in enumerate(envs):
        here = current.get(env.pk)
        before = envs[index - 1] if index and envs[index - 1].service_id == env.service_id else None
        after = envs[index + 1] if index + 1 < len(envs) and envs[index + 1].service_id == env.service_id else None
        before_sha = current[before.pk].sha if before and before.pk in current else None
        locked = env.locked_at and (env.lock_expires_at is None or env.lock_expires_at > now)
        leased = env.leased_by__username and env.lease_expires_at and env.lease_expires_at > now
        cells[env.service_id][columns[env.name]] = MatrixCell(
            environment=env.name,
            current=here,
            active=active.get(env.pk),
            build=builds.get((env.service_id, here.sha)) if here else None,
            ahead_of_next=env.ahead_of_next,
            next_name=after.name if after else "",
            promote_from=before.name if before and before_sha and (here is None or here.sha != before_sha) else "",
            lock=env.lock_reason if locked else "",
            lease=(
                f"{env.leased_by__username} ({env.lease_ref}) until {timezone.localtime(env.lease_expires_at):%H:%M}"
                if leased
                else ""
            ),
            behind=tuple(behind.get(env.pk, ())),
            freeze=freeze_now(env.freeze, now=now),
        )
    budgets = budget_badges([row.pk for row in service_rows] if window else services.values("pk"))
    rows = [
        MatrixRow(row.name, row.team__name or "", cells[row.pk], *budgets.get(row.pk, ("", False)))
        for row in service_rows
    ]
    return Matrix(list(columns), rows, list(Team.objects.order_by("name").values_list("name", flat=True)), total)


def _build_summaries(shas: set[str]) -> dict[tuple[int, str], BuildSummary]:
    """The newest build of each (service, sha) among `shas`."""
    latest: dict[tuple[int, str], BuildSummary] = {}
    rows = Build.objects.filter(sha__in=shas).order_by("-started_at", "-number")
    for row in rows.values_list("service_id", "sha", "number", "result", named=True):
        latest.setdefault((row.service_id, row.sha), BuildSummary(row.number, row.result))
    return latest


def service_environments(service: Service) -> list[EnvironmentState]:
    environments = list(
        service.environments.order_by("position", "name")
        .select_related("service__team", "locked_by", "leased_by")
        .prefetch_related("hosts")
    )
    return environment_states(environments)


@dataclass(frozen=True)
class BranchRow:
    branch: Branch | Tag  # (a tag is shown as a branch is)
    build: Build | None
    runs_in: list[str]
    gates: list[tuple[EnvironmentState, Gate]]
    checks: Verdict | None = None  # its required GitHub checks combined (ci: github with required_checks)


def service_branches(
    service: Service, states: list[EnvironmentState], *, query: str = "", limit: int | None = None
) -> tuple[list[BranchRow], int]:
    """The default branch first, then those an environment runs, then the others by most recent commit; each
    with its build and gates. At most `limit` of them (all without one), and how many match."""
    branches = service.branches.all()
    if query:
        branches = branches.filter(Q(name__icontains=query) | Q(name=service.default_branch))
    running = {state.current.sha for state in states if state.current}
    ranked = branches.annotate(
        rank=Case(
            When(name=service.default_branch, then=Value(0)),
            When(sha__in=running, then=Value(1)),
            default=Value(2),
            output_field=IntegerField(),
        )
    ).order_by("rank", "-committed_at", "name")
    total = branches.count() if limit is not None else 0
    rows = _ref_rows(service, list(ranked[:limit] if limit is not None else ranked), states)
    return rows, total if limit is not None else len(rows)


def service_tags(service: Service, states: list[EnvironmentState], *, limit: int = 10) -> list[BranchRow]:
    """The newest tags (by their commit's date), each with its build and gates, as branches are shown."""
    recent = service.tags.order_by(F("committed_at").desc(nulls_last=True))[: limit * 5]
    return _ref_rows(service, sorted(recent, key=newest_first_key, reverse=True)[:limit], states)


def _ref_rows(service: Service, refs: Sequence[Branch | Tag], states: list[EnvironmentState]) -> list[BranchRow]:
    builds = Build.objects.newest_of({service.pk}, {ref.sha for ref in refs})
    badges, verdicts = verdicts_of(service, {ref.sha for ref in refs}, [s.environment for s in states])
    return [
        BranchRow(
            branch=ref,
            build=(build := builds.get((service.pk, ref.sha))),
            runs_in=[s.environment.name for s in states if s.current and s.current.sha == ref.sha],
            gates=[
                (s, shown_gate(s.environment, ref.sha, build, verdicts.get((s.environment.pk, ref.sha))))
                for s in states
            ],
            checks=badges.get(ref.sha),
        )
        for ref in refs
    ]


def sync_states(service: Service) -> dict[str, SyncState]:
    """The freshness of each source of `service`'s data, by source name."""
    return {state.source: state for state in service.sync_states.all()}


def stale_sync_states() -> QuerySet[SyncState]:
    return SyncState.objects.select_related("service").exclude(error="").order_by("service__name", "source")


def deploy_log_after(deploy: Deploy, after: int, *, limit: int | None = None) -> list[DeployLog]:
    return list(deploy.log_lines.filter(pk__gt=after).order_by("pk")[:limit])


def deploy_history() -> QuerySet[Deploy]:
    return Deploy.objects.select_related("environment__service", "requested_by").order_by("-id")


def service_named(name: str) -> Service:
    """The service called `name`; NotFound listing the services there are (Slack, the API and the CLI name them)."""
    service = Service.objects.select_related("team").filter(name=name).first()
    if service is None:
        names = list(Service.objects.order_by("name").values_list("name", flat=True)[:20])
        raise NotFound(f"there is no service {name!r}; services: {', '.join(names) or 'none yet'}")
    return service


def environment_named(service_name: str, name: str = "") -> Environment:
    """`service_name`'s environment `name`, or its first one when `name` is empty; NotFound saying what there is."""
    service = service_named(service_name)
    environments = list(
        service.environments.select_related("service__team", "locked_by", "leased_by").order_by("position")
    )
    if not environments:
        raise DeployRefused(f"{service.name} has no environments in the catalog; add one and load the catalog again")
    if not name:
        return environments[0]
    found = next((env for env in environments if env.name == name), None)
    if found is None:
        known = ", ".join(env.name for env in environments)
        raise NotFound(f"{service.name} has no environment {name!r}; it has: {known}")
    return found
