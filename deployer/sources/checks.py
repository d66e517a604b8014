"""Required checks (ci: github with github_actions.required_checks or branch_protection): reading the check runs
and commit statuses GitHub holds for the commits a gate may be asked about (deploys/required_checks.py judges
them): the default branch's head, the heads of branches an environment trusts, what runs in an environment,
the newest other branch and tag heads, and any of those a check_run, check_suite or status webhook names.

Reads are conditional (ETags per commit: an unchanged commit costs no rate-limit unit). A commit whose checks
are settled is read again only after RECHECK, one still running after PENDING_EVERY (a webhook marks it stale
sooner). Each row remembers which branches the commit headed when read, because a check other than a trusted
workflow run's counts in a production-like environment only on a commit that headed a branch it trusts."""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from deployer.choices import DeployStatus
from deployer.integrations import github_checks
from deployer.integrations.github import GitHubRefused
from deployer.models import Branch, CommitChecks, Deploy, Environment, Service, Tag

HEADS_READ = 40  # commits whose checks a sync keeps fresh (the newest of the others fill what is left)
RECHECK = timedelta(minutes=10)
PENDING_EVERY = timedelta(seconds=30)
FORGET = timedelta(days=7)  # a commit no longer a head: its checks are dropped after this
BRANCHES_KEPT = 20


@dataclass(frozen=True)
class Required:
    name: str
    app_id: int | None = None  # a branch protection rule's app: only its check runs count


@dataclass(frozen=True)
class Verdict:
    state: str  # success, failure or pending
    said: str  # what the gate and the page say, e.g. "lint failed (github-actions)"


def checks_wanted(service: Service) -> bool:
    wanted = service.github_actions or {}
    return service.ci == "github" and bool(wanted.get("required_checks") or wanted.get("branch_protection"))


def required_of(service: Service) -> list[Required]:
    """The checks the gate asks for: the catalog's, then the default branch protection's (when asked to)."""
    if not checks_wanted(service):
        return []
    wanted = service.github_actions or {}
    found = {name: Required(name) for name in wanted.get("required_checks") or []}
    if wanted.get("branch_protection"):
        for rule in service.protected_checks or []:
            app_id = rule.get("app_id")  # -1 or none: any app may set it, so check_apps decides
            found[rule["context"]] = Required(
                rule["context"], app_id if isinstance(app_id, int) and app_id > 0 else None
            )
    return list(found.values())


def checks_sync(service: Service, etags: dict[str, object]) -> tuple[dict[str, object], int, list[str]]:
    """Read the protection rule (when asked to) and the checks of the commits that need it; return the etags
    for the service's checks sync state, how many requests were made, and what GitHub refused (per commit:
    one bad commit does not stop the others). GitHubUnavailable and GitHubRateLimited escape."""
    requests, etags, refused = 0, dict(etags), []
    if (service.github_actions or {}).get("branch_protection"):
        requests += 1
        try:
            etag, rules = github_checks.protection_checks(
                service.github_repo, service.default_branch, etag=str(etags.get("protection", ""))
            )
        except GitHubRefused as exc:
            refused.append(
                f"{exc}; branch_protection: true reads the default branch's protection rule: give Gantry's token "
                "read access to the repository's administration, or name the checks in required_checks"
            )
        else:
            etags["protection"] = etag
            if rules is not None and rules != service.protected_checks:
                Service.objects.filter(pk=service.pk).update(protected_checks=rules)
                service.protected_checks = rules
    heads = _heads(service)
    now = timezone.now()
    for row in _due(service, heads, now):
        requests += 2
        try:
            checks_read(service, row, heads.get(row.sha, []))
        except GitHubRefused as exc:
            refused.append(f"checks of {row.sha[:8]}: {exc}")
    old = Q(read_at__lt=now - FORGET) | Q(read_at__isnull=True, stale=False)
    CommitChecks.objects.filter(old, service=service).exclude(sha__in=heads).delete()
    return etags, requests, refused


def _due(service: Service, heads: dict[str, list[str]], now: object) -> list[CommitChecks]:
    """The rows to read now: new heads, stale ones, running ones after PENDING_EVERY, the rest after RECHECK."""
    rows = {row.sha: row for row in CommitChecks.objects.filter(Q(sha__in=heads) | Q(stale=True), service=service)}
    due = []
    for sha in [*heads, *(sha for sha in rows if sha not in heads)]:
        row = rows.get(sha) or CommitChecks(service=service, sha=sha)
        if row.stale or row.read_at is None:
            due.append(row)
            continue
        running = any(c.get("state") == "pending" for c in row.contexts or [])
        if row.read_at < now - (PENDING_EVERY if running else RECHECK):  # type: ignore[operator]
            due.append(row)
    return due


def _heads(service: Service) -> dict[str, list[str]]:
    """sha → the branches it heads, for the commits a gate may be asked about, the most likely first. Ordered
    by when Gantry saw a ref move, not by commit dates (a branch author writes those)."""
    environments = list(Environment.objects.filter(service=service).values_list("pk", "trusted_build_branches"))
    trusted = {glob for _, globs in environments for glob in globs or []}
    branches = list(Branch.objects.filter(service=service).order_by("-updated_at").values_list("name", "sha"))
    first = [
        (n, s) for n, s in branches if n == service.default_branch or any(fnmatch.fnmatchcase(n, g) for g in trusted)
    ]
    heads: dict[str, list[str]] = {}
    for name, sha in [*first, *branches][: HEADS_READ * 2]:
        if sha and (sha in heads or len(heads) < HEADS_READ):
            heads.setdefault(sha, [])
            if name not in heads[sha]:
                heads[sha].append(name)
    running = Deploy.objects.filter(environment_id__in=[pk for pk, _ in environments], status__in=DeployStatus.live())
    for sha in running.order_by("-id").values_list("sha", flat=True)[: len(environments) * 2]:
        heads.setdefault(sha, [])
    for sha in Tag.objects.filter(service=service).order_by("-updated_at").values_list("sha", flat=True)[:5]:
        heads.setdefault(sha, [])
    return heads


def checks_read(service: Service, row: CommitChecks, branches: list[str]) -> bool:
    """Read `row`'s commit's check runs and statuses again (conditional on the last answers); whether anything
    changed. `branches`: those the commit heads now (added to those it headed before)."""
    etags = dict(row.etags or {})
    checks_etag, checks = github_checks.check_runs(service.github_repo, row.sha, etag=str(etags.get("checks", "")))
    statuses_etag, statuses = github_checks.statuses(service.github_repo, row.sha, etag=str(etags.get("statuses", "")))
    contexts = list(row.contexts or [])
    if checks is not None:
        contexts = [c for c in contexts if c.get("kind") != "check"] + [asdict(c) for c in checks]
    if statuses is not None:
        contexts = [c for c in contexts if c.get("kind") != "status"] + [asdict(c) for c in statuses]
    changed = contexts != row.contexts
    row.contexts, row.read_at, row.stale = contexts[:300], timezone.now(), False
    row.branches = list(dict.fromkeys([*(row.branches or []), *branches]))[-BRANCHES_KEPT:]
    row.etags = {"checks": checks_etag, "statuses": statuses_etag}
    if row.pk is None:
        CommitChecks.objects.update_or_create(
            service=service,
            sha=row.sha,
            defaults={k: getattr(row, k) for k in ("contexts", "read_at", "stale", "branches", "etags")},
        )
    else:
        row.save(update_fields=["contexts", "etags", "read_at", "stale", "branches"])
    return changed


def checks_mark_stale(service: Service, sha: str) -> bool:
    """A webhook says `sha`'s checks changed: read them with the next sync, if Gantry keeps them (a head, or a
    commit read before). Whether it does; a webhook names any commit, and reading each would let a flood of
    statuses spend the token's budget."""
    if CommitChecks.objects.filter(service=service, sha=sha).update(stale=True):
        return True
    if sha in _heads(service):
        CommitChecks.objects.get_or_create(service=service, sha=sha, defaults={"stale": True})
        return True
    return False
