"""The pre-flight plan: what a deploy will do, shown before it starts.

Hosts and batches, the commits it ships (a warning above the environment's
`commit_warning`), the migration files among them and the config keys it
changes, every check that could stop it and its state now, and how long it
will likely take: the p90 of the environment's recent deploys. The commits and
migration files come from a worker (sources/changes.py): until one has stored
them the plan says they are on their way, and the page polls for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.models import User

from deployer.catalog.analysis_spec import AnalysisSpec
from deployer.choices import HostStatus
from deployer.deploys.batches import batch_sizes, canary_first, canary_hosts
from deployer.deploys.check_ahead import check_request, checkable
from deployer.deploys.config import config_changes
from deployer.deploys.estimates import eta_seconds
from deployer.deploys.migration_check import MigrationsUnsafe, check_for, new_files, shipped_findings, unsafe_summary
from deployer.deploys.request import current_deploy, promotion_of, resolve_ref
from deployer.deploys.rules import RULES, Ask
from deployer.deploys.schema_changes import SchemaBehind, migrations_described
from deployer.environments.access import access_for
from deployer.environments.leases import LeaseHeld
from deployer.environments.secret_scope import granted_secrets
from deployer.errors import DeployRefused, Locked
from deployer.integrations import git
from deployer.models import ChangeSet, Deploy, DeployHost, Environment, Measurement, MigrationCheck
from deployer.sources.changes import NotComputed, change_set, commits_of, waited_too_long

# The rules the plan shows (the others depend on what the person ticks or types when they confirm).
SHOWN = {"permission", "lock", "freeze", "error budget", "lease", "hosts", "build gate", "health checks", "schema"}


@dataclass(frozen=True)
class Changes:
    """What the deploy changes: commits it adds (`ahead`), or takes away when it goes back (`behind`), and the
    migration files among them; `pending`, the change set a worker has yet to store."""

    commits: list[git.CommitInfo] = field(default_factory=list)
    ahead: int | None = None
    behind: int = 0
    note: str = ""
    migrations: list[dict[str, str]] = field(default_factory=list)
    pending: ChangeSet | None = None
    migrations_said: str = ""  # what the migration files mean here (migrations_summary)
    change_set: ChangeSet | None = None
    check: MigrationCheck | None = None  # the migration check of the target, when the catalog asks for one
    findings: list[dict[str, str]] = field(default_factory=list)  # its findings in the files this ships
    needs_confirmation: str = ""  # why a production deploy of this asks for a confirmation (or "")

    @property
    def checking(self) -> bool:
        """A worker runs the migration check now: the page polls for its result."""
        return self.check is not None and self.check.finished_at is None

    @property
    def lacks_applied(self) -> bool:
        """The target lacks migration files that run here (applied): the form asks to confirm."""
        return any(m.get("change") == "D" for m in self.migrations)


@dataclass(frozen=True)
class Check:
    label: str
    ok: bool
    detail: str
    blocking: bool = True  # a failed blocking check stops the deploy; others only inform


@dataclass(frozen=True)
class Plan:
    environment: Environment
    ref: str
    sha: str
    current: Deploy | None
    batches: list[list[str]]
    changes: Changes
    checks: list[Check]
    eta_seconds: int | None
    eta_basis: int  # how many earlier deploys the ETA comes from
    config_changes: list[str] = field(default_factory=list)  # config keys it changes (secrets by name)
    build: str = ""  # where and how the release is built (builder.py)
    secrets: str = ""  # where its secret values come from, and what it shares with production
    promoted_from: Deploy | None = None  # a promotion: the deploy of the environment before, shipped again
    hosts: list[str] = field(default_factory=list)  # each host as its records name it (user@address:port)
    analysis: str = ""  # the canary analysis that will judge the first batch, and what it may add

    @property
    def too_many_commits(self) -> bool:
        return (self.changes.ahead or 0) > self.environment.commit_warning

    @property
    def migrations(self) -> list[dict[str, str]]:
        return self.changes.migrations

    @property
    def frozen(self) -> bool:
        """A freeze window stops it (an admin may deploy in it with a reason)."""
        return any(check.label == "freeze" and not check.ok for check in self.checks)

    @property
    def blocked(self) -> bool:
        return any(check.blocking and not check.ok for check in self.checks)


def deploy_plan(*, environment: Environment, ref: str, user: User, promote: bool = False) -> Plan:
    """DeployRefused for a ref that cannot be deployed (or nothing to promote); otherwise the plan, whatever
    its checks say. With `promote`, the plan ships again what runs in the environment before this one."""
    promoted_from = promotion_of(environment) if promote else None
    if promoted_from is not None:
        ref, sha = promoted_from.ref, promoted_from.sha
    else:
        sha = resolve_ref(environment, ref)
    current = current_deploy(environment)
    live_ever = set(
        DeployHost.objects.filter(deploy__environment=environment, status=HostStatus.LIVE).values_list("host_id")
    )
    hosts = [
        host.address if (host.pk,) in live_ever else f"{host.address} (new: joins at this release)"
        for host in environment.hosts.all()
    ]
    spec = AnalysisSpec.model_validate(environment.analysis) if environment.analysis else None
    sizes = batch_sizes(len(hosts), environment.batch_size) if hosts else []
    if spec and hosts:  # the rollout's own split: the canary first
        sizes = canary_first(len(hosts), spec.canary, environment.batch_size)
    batches, start = [], 0
    for size in sizes:
        batches.append(hosts[start : start + size])
        start += size
    eta, basis = eta_seconds(environment)
    if spec and eta is not None and not Measurement.objects.filter(deploy__environment=environment).exists():
        eta += analysis_longest(spec)  # the deploys it comes from ran without this analysis
    return Plan(
        environment=environment,
        ref=ref,
        sha=sha,
        current=current,
        batches=batches,
        changes=plan_changes(environment, current.sha if current else "", sha, user=user),
        checks=_checks(environment, ref, sha, user),
        eta_seconds=eta,
        eta_basis=basis,
        config_changes=config_changes(environment, current.config_definitions if current else None),
        build=build_described(environment),
        secrets=secrets_described(environment),
        promoted_from=promoted_from,
        hosts=[str(host) for host in environment.hosts.all()],
        analysis=analysis_described(spec, len(hosts), balanced=bool(environment.lb_runtime_api)),
    )


def analysis_longest(spec: AnalysisSpec) -> int:
    """The longest an analysis of one batch waits and measures (seconds)."""
    return max(spec.bake, spec.bake_max) + max(metric.count * metric.interval for metric in spec.judged_by)


def analysis_described(spec: AnalysisSpec | None, hosts: int, *, balanced: bool = False) -> str:
    """The canary analysis as the plan says it: which batch, by what, against what, the canary's share of the
    requests, and its longest time."""
    if spec is None:
        return ""
    longest = analysis_longest(spec)
    canary = canary_hosts(hosts, spec.canary)
    share = (
        f"behind HAProxy the canary gets about {spec.traffic}% of the requests while it is judged"
        if balanced
        else f"with no load balancer here the canary gets what its clients send it (about "
        f"{100 * canary / max(hosts, 1):.0f}% if they spread requests evenly)"
    )
    metrics = ", ".join(f"{m.name} ({m.condition}{', dry run' if m.dry_run else ''})" for m in spec.judged_by)
    against = "the hosts still on the old release" if hosts > 1 else "absolute conditions only (one host)"
    return (
        f"the first batch ({canary} host){' and every later one' * spec.every_batch} "
        f"is judged in Prometheus {spec.prometheus!r} "
        f"against {against} by {metrics}; {share}; it adds up to {longest} s"
        + (f" (bake waits up to {spec.bake_max} s for each metric's min_sample)" if spec.bake_max > spec.bake else "")
    )


def build_described(environment: Environment) -> str:
    """Where the release is built and what keeps that build from every other, as the plan says it."""
    if environment.build_mode == "jenkins":
        return f"by Jenkins: the file its successful build of this commit archived ({environment.jenkins_artifact})"
    if environment.build_mode == "github":
        return (
            f"by GitHub Actions: {environment.jenkins_artifact} in the artifact {environment.github_artifact!r} its "
            "successful run of this commit uploaded (checked against GitHub's digest)"
        )
    if environment.build_mode != "builder":
        return "on every host, in the new release directory"
    where = f"once on the builder {environment.builder_address}"
    if environment.builder_isolation == "account":
        level = "production" if environment.production else "non-production"
        return (
            f"{where} as {environment.builder_user or 'deploy'}, without a sandbox: that account builds only for "
            f"{level} environments, so an artifact built for any other is never reused here (a promotion rebuilds)"
        )
    return (
        f"{where}, in a sandbox of its own (bubblewrap): no other build can change it, and the identical artifact "
        "is promoted; a builder without bubblewrap refuses to build"
    )


def secrets_described(environment: Environment) -> str:
    """Which secrets the deploy reads and from where; a non-production environment's sharing with production
    is said out loud (the catalog allows it only where it is written)."""
    names = granted_secrets(environment)
    if not names:
        return ""
    said = f"{', '.join(names)} from {environment.secret_source}, read at the deploy"
    shared = [name for name in names if name in (environment.secrets_shared_with_production or [])]
    if shared and not environment.production:
        said += f"; shared with production (the catalog says so): {', '.join(shared)}"
    return said


def plan_changes(environment: Environment, base: str, head: str, *, user: User | None = None) -> Changes:
    """What going from `base` to `head` changes, as far as a worker has told (never read here: the web
    machine has no repository)."""
    if not base:
        return Changes(note="the first deploy here: everything in this commit ships")
    if base == head:
        return Changes(ahead=0, note=f"{environment.name} already runs this commit (a redeploy)")
    try:
        row = change_set(service=environment.service, base=base, head=head, user=user)
        return changes_shown(row, environment, user)
    except NotComputed as exc:
        return Changes(note=str(exc))


def changes_shown(row: ChangeSet, environment: Environment, user: User | None = None) -> Changes:
    """The change set as the plan shows it; `user` (allowed to deploy) asks for the migration check."""
    if row.computed_at is None:
        if waited_too_long(row):
            return Changes(
                note="no worker has listed the commits yet: is a worker of the sync queue running? "
                "Reload the page to ask again"
            )
        return Changes(pending=row)
    if row.error:
        return Changes(note=f"the commit list is not available: {row.error}")
    migrations = migrations_described(environment, list(row.migrations or []))
    check = None
    if new_files(migrations) and checkable(environment):
        check = check_request(environment, row.head, user) or check_for(environment, row.head)
    unsafe = unsafe_summary(check, migrations) if check is not None and check.finished_at else ""
    return Changes(
        commits=commits_of(row),
        ahead=row.ahead,
        behind=row.behind,
        migrations=migrations,
        migrations_said=migrations_summary(migrations, environment),
        change_set=row,
        check=check,
        findings=shipped_findings(check, migrations) if check is not None else [],
        needs_confirmation=unsafe if environment.production else "",
    )


def migrations_summary(migrations: list[dict[str, str]], environment: Environment) -> str:
    """What the release phase will really do with the migration files: new ones, ones an earlier deploy here
    already applied (a branch again after a rollback), and ones this code lacks though they are applied."""
    new = [m for m in migrations if m.get("change") != "D" and not m.get("applied_by")]
    applied = [m for m in migrations if m.get("applied_by")]
    lacking = [m for m in migrations if m.get("change") == "D"]
    phase = "release_command" if environment.release_command else "nothing in this environment (no release_command)"
    parts = []
    if new:
        parts.append(f"{len(new)} new here: {phase} applies {'it' if len(new) == 1 else 'them'}")
    if applied:
        parts.append(
            f"{len(applied)} already applied here by an earlier deploy: the database has "
            f"{'it' if len(applied) == 1 else 'them'}, so {phase} changes nothing for "
            f"{'it' if len(applied) == 1 else 'them'}"
        )
    if lacking:
        parts.append(f"{len(lacking)} applied here that this code lacks (deploying it needs your confirmation)")
    return "; ".join(parts)


def _checks(environment: Environment, ref: str, sha: str, user: User) -> list[Check]:
    """The rules a person can see before clicking (rules.py, the same ones the click runs), and what else
    stands in the way: another deploy running, a second person to approve."""
    access = access_for(user)
    ask = Ask(environment, ref, sha, user, access)
    checks = []
    for label, rule in RULES:
        if label not in SHOWN:
            continue
        try:
            checks.append(Check(label, True, rule(ask)))
        except LeaseHeld as exc:  # the deploy button asks: take it over, or queue behind it
            checks.append(Check(label, False, str(exc), blocking=False))
        except Locked as exc:  # an admin may confirm deploying through it
            checks.append(Check(label, False, str(exc), blocking=not access.is_admin))
        except (SchemaBehind, MigrationsUnsafe) as exc:  # the person may confirm it (the form asks)
            checks.append(Check(label, False, str(exc), blocking=False))
        except DeployRefused as exc:
            checks.append(Check(label, False, str(exc)))
    active = Deploy.objects.active().filter(environment=environment).first()
    detail = "nothing else runs there" if active is None else f"deploy #{active.pk} is {active.status}"
    checks.insert(1, Check("environment free", active is None, detail))
    if environment.require_approval:
        checks.append(Check("approval", True, "a second person must approve it before it runs", blocking=False))
    return checks
