"""The rules a deploy request must pass, in the order they are asked, each one named.

`deploy_request` (request.py) runs them all and stops at the first refusal; the plan page (plan.py) runs
the ones a person can see before clicking and shows each with its state, so what the page says and what
the button then does cannot disagree. A rule returns what it found when it holds (the plan shows it), and
raises the refusal (its HTTP status with it) when it does not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import User

from deployer.choices import DeployStatus
from deployer.deploys.error_budget import budget_blocks, budget_summary
from deployer.deploys.estimates import eta_seconds
from deployer.deploys.gates import deploy_gate, trusted_build
from deployer.deploys.migration_check import migrations_unsafe
from deployer.deploys.required_checks import commit_verdict
from deployer.deploys.roles import environment_roles, roles_unchecked
from deployer.deploys.schema_changes import schema_behind
from deployer.environments.access import Access
from deployer.environments.freezes import Freeze, freeze_blocking, freeze_refusal
from deployer.environments.leases import lease_check
from deployer.environments.locks import lock_summary
from deployer.errors import BudgetSpent, DeployRefused, Frozen, Locked
from deployer.lib.text import one_line
from deployer.models import BudgetReading, Deploy, Environment

EMERGENCY_REASON_MIN = 10


@dataclass(frozen=True)
class DeployOptions:
    """What the person said along with the request."""

    checklist: tuple[str, ...] = ()  # the checklist items they ticked
    override_lock: bool = False  # an admin confirmed deploying through the environment's lock
    emergency_reason: str = ""  # an admin's emergency deploy: skips gates, the lock, checklist and approval
    expected_sha: str = ""  # the sha the person saw in the plan: refuse if the branch moved since
    take_over_lease: bool = False  # take the environment's lease from whoever holds it (recorded)
    # deploy code that lacks migrations the environment has applied, or migrations the check flagged (recorded)
    confirm_schema: bool = False
    skip_hosts: tuple[str, ...] = ()  # hosts to deploy without (a dead host): "user@address:port" or an address
    skip_reason: str = ""  # why (recorded with the deploy and shown wherever it appears)
    freeze_override: str = ""  # an admin's reason for deploying in a freeze window (recorded, told in Slack)


NO_OPTIONS = DeployOptions()


@dataclass(frozen=True)
class Ask:
    """One request to deploy `sha` (`ref`) to `environment`, as the rules see it."""

    environment: Environment
    ref: str
    sha: str
    user: User | None  # None: Gantry itself
    access: Access
    options: DeployOptions = NO_OPTIONS

    @property
    def emergency(self) -> str:
        """The admin's reason for an emergency deploy, on one line ("" for an ordinary deploy)."""
        return one_line(self.options.emergency_reason, limit=None)

    @property
    def lock_overridden(self) -> str:
        """The lock an admin deploys through (kept with the deploy and in the audit log), or ""."""
        if self.environment.is_locked and not self.emergency and self.access.is_admin and self.options.override_lock:
            return lock_summary(self.environment)
        return ""

    @property
    def freeze_overridden(self) -> str:
        """The freeze an admin deploys in, with their reason (kept with the deploy, audited, told), or ""."""
        reason = one_line(self.options.freeze_override, limit=500)
        if self.emergency or not self.access.is_admin or len(reason) < FREEZE_REASON_MIN:
            return ""
        found = deploy_freeze(self.environment)
        return f"{found.summary}; {reason}" if found else ""

    @property
    def takes_over_lease(self) -> bool:
        """The person takes someone else's lease (the lease rule let them: they said so)."""
        environment = self.environment
        held = bool(environment.lease_minutes) and environment.is_leased
        mine = self.user is not None and environment.leased_by_id == self.user.pk
        return held and not mine and not self.emergency and self.options.take_over_lease


def permission(ask: Ask) -> str:
    ask.access.require_deploy(ask.environment)
    return "you may deploy here"


def unmoved(ask: Ask) -> str:
    expected = ask.options.expected_sha
    if expected and expected != ask.sha:
        raise DeployRefused(
            f"{ask.ref} moved from {expected[:8]} to {ask.sha[:8]} since you looked at the plan; "
            "look at the new plan and deploy again"
        )
    return f"{ask.ref} is at {ask.sha[:8]}"


def emergency(ask: Ask) -> str:
    if not ask.emergency:
        return "an ordinary deploy"
    ask.access.require_admin("make an emergency deploy")
    if len(ask.emergency) < EMERGENCY_REASON_MIN:
        raise DeployRefused(
            f"an emergency deploy needs a reason of at least {EMERGENCY_REASON_MIN} characters; "
            "it is shown wherever the deploy appears"
        )
    return f"emergency: {ask.emergency}"


def lock(ask: Ask) -> str:
    environment = ask.environment
    if not environment.is_locked:
        return "not locked"
    if ask.emergency:
        return f"{lock_summary(environment)}; an emergency deploy goes through it"
    summary = lock_summary(environment)
    if ask.access.is_admin and ask.options.override_lock:
        return f"{summary}; deploying through it (recorded)"
    if ask.access.is_admin:
        raise Locked(
            f"{environment} is {summary}. As an admin you may deploy anyway: confirm deploying through the lock "
            "(signed in, on the plan page or with the API and a browser session; never with a token)"
        )
    raise Locked(f"{environment} is {summary}. Ask whoever locked it to unlock it, or an admin to deploy")


FREEZE_REASON_MIN = 10


def deploy_duration(environment: Environment) -> timedelta | None:
    """How long a deploy here likely takes (the p90 of recent ones), None when there is no history."""
    seconds = eta_seconds(environment)[0]
    return timedelta(seconds=seconds) if seconds is not None else None


def deploy_freeze(environment: Environment) -> Freeze | None:
    """The freeze window a deploy starting now would run into, if any (the worker asks again at its start)."""
    return freeze_blocking(environment, deploy_duration(environment))


def freeze(ask: Ask) -> str:
    if ask.emergency:
        return "an emergency deploy goes through freeze windows"
    found = deploy_freeze(ask.environment)
    if found is None:
        return "no freeze window now or before the deploy would end"
    if ask.freeze_overridden:
        return f"{found.summary}; deploying in it (recorded): {one_line(ask.options.freeze_override, limit=500)}"
    refusal = freeze_refusal(found, deploy_duration(ask.environment), where=str(ask.environment))
    if ask.access.is_admin and ask.options.freeze_override:
        raise Frozen(f"{refusal}. Say why in at least {FREEZE_REASON_MIN} characters")
    raise Frozen(refusal)


def error_budget(ask: Ask) -> str:
    """A production deploy waits while the service's budget is spent or burning fast, where its SLO says so."""
    service = ask.environment.service
    if not service.slo:
        return "no SLO declared"
    summary = budget_summary(BudgetReading.objects.filter(service=service).first())
    if not service.slo.get("gate") or not ask.environment.production:
        return f"{summary} (shown only)"
    if ask.emergency:
        return f"{summary}; an emergency deploy goes through"
    if blocked := budget_blocks(service):
        raise BudgetSpent(f"{blocked}. Deploy once it recovers, roll back, or ask an admin for an emergency deploy")
    return summary


def lease(ask: Ask) -> str:
    if ask.emergency:
        return "an emergency deploy does not wait for a lease"
    taking = lease_check(
        ask.environment, None if ask.access.is_system else ask.user, take_over=ask.options.take_over_lease
    )
    if taking:
        return "taking the lease over (recorded)"
    if ask.environment.lease_minutes:
        return f"this deploy claims the environment for {ask.environment.lease_minutes} min"
    return "no lease here"


def checklist(ask: Ask) -> str:
    if ask.access.is_system or ask.emergency or not ask.environment.checklist:
        return "nothing to tick"
    missing = [item for item in ask.environment.checklist if item not in set(ask.options.checklist)]
    if missing:
        raise DeployRefused(
            f"tick every checklist item of {ask.environment} before deploying; not ticked: " + "; ".join(missing)
        )
    return "every item ticked"


def build_gate(ask: Ask) -> str:
    if ask.emergency:
        return "an emergency deploy skips the build gate"
    build, untrusted = trusted_build(ask.environment, ask.sha)
    checks = commit_verdict(ask.environment, ask.sha)
    gate = deploy_gate(ask.environment, ask.sha, build, untrusted, checks=checks)
    if not gate.open:
        raise DeployRefused(gate.reason)
    if checks is not None and ask.environment.require_green_build:
        return f"checks passed: {checks.said}"
    if not ask.environment.require_green_build or build is None:
        return "no green build required here"
    return f"green: build #{build.number}"


def schema(ask: Ask) -> str:
    """Code that lacks migrations applied here asks first (continuous delivery: its worker refuses it, so the
    refusal is a deploy on record, not a quiet wait)."""
    if ask.access.is_system:
        return "checked by the worker"
    current = Deploy.objects.filter(environment=ask.environment, status__in=DeployStatus.live()).order_by("-id").first()
    refusal = schema_behind(ask.environment, ask.ref, ask.sha, current) or migrations_unsafe(
        ask.environment, ask.sha, current
    )
    if refusal is None:
        return "no migration that runs here is missing" + (
            "; the migration check judges what it ships" if ask.environment.migration_check else ""
        )
    if ask.options.confirm_schema:
        return f"confirmed: {refusal}"
    raise refusal


def health_checks(ask: Ask) -> str:
    """A batch moves on when its hosts are healthy: a role with no health check lets a release whose processes
    die at start reach every host. Production refuses one unless the catalog says it is meant so."""
    environment = ask.environment
    roles = environment_roles(environment)
    unchecked = roles_unchecked(environment)
    on_purpose = ", ".join(role.name for role in roles if role.unchecked_on_purpose)
    if not unchecked and on_purpose:
        return f"no health check on purpose: {on_purpose} (a restart counts as healthy when it returns)"
    if not unchecked and not any(role.restart_command.strip() for role in roles):
        return "nothing restarts (no restart command): no process to check"
    if not unchecked:
        return "every role has a health check" if len(roles) > 1 else "a health check after each restart"
    names = ", ".join(role.name for role in unchecked)
    where = f"roles.{unchecked[0].name}." if environment.roles else ""
    if environment.production and not ask.emergency:
        raise DeployRefused(
            f"{environment} is production and {names} has no health check, so a release whose processes die at "
            f"start would reach every host: add {where}health_check_url or {where}health_check_command in the "
            f"catalog, or say {where}health_check: none if it has none on purpose"
        )
    return f"no health check: {names} (a restart counts as healthy when it returns)"


SKIP_REASON_MIN = 10


def hosts_skipped(ask: Ask) -> list[str]:
    """The environment's hosts (as their records name them) the request deploys without; DeployRefused for
    a name that is no host of it, or for all of them."""
    hosts = {str(host): host for host in ask.environment.hosts.all()}
    skipped = []
    for name in dict.fromkeys(ask.options.skip_hosts):
        found = [full for full, host in hosts.items() if name in {full, host.address, f"{host.address}:{host.port}"}]
        if len(found) != 1:
            raise DeployRefused(
                f"{name[:100]!r} is not one host of {ask.environment}; its hosts: {', '.join(hosts) or 'none'}"
            )
        skipped.append(found[0])
    if skipped and len(skipped) >= len(hosts):
        raise DeployRefused(f"a deploy without every host of {ask.environment} would deploy nothing")
    return skipped


def skipping(ask: Ask) -> str:
    """A person may deploy without a host that is down, saying why; the catalog may allow unreachable hosts."""
    skipped = hosts_skipped(ask)
    allowed = ask.environment.unreachable_hosts
    allowance = f"; up to {allowed} unreachable host{'s' if allowed > 1 else ''} may be left behind" if allowed else ""
    if not skipped:
        return f"every host{allowance}"
    reason = one_line(ask.options.skip_reason, limit=500)
    if len(reason) < SKIP_REASON_MIN:
        raise DeployRefused(
            f"say why you deploy without {', '.join(skipped)} (at least {SKIP_REASON_MIN} characters): it is "
            "recorded and shown with the deploy"
        )
    return f"without {', '.join(skipped)} ({reason}): they stay behind{allowance}"


Rule = tuple[str, Callable[[Ask], str]]
# In the order they are asked: the first refusal is the one a person reads.
RULES: list[Rule] = [
    ("permission", permission),
    ("branch unmoved", unmoved),
    ("emergency", emergency),
    ("lock", lock),
    ("freeze", freeze),
    ("error budget", error_budget),
    ("lease", lease),
    ("checklist", checklist),
    ("hosts", skipping),
    ("build gate", build_gate),
    ("health checks", health_checks),
    ("schema", schema),
]


def rules_check(ask: Ask) -> None:
    """Every rule, in order; the first refusal is raised."""
    for _, rule in RULES:
        rule(ask)
