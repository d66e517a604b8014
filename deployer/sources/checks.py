"""Required checks (ci: github with github_actions.required_checks or branch_protection): the check runs and
commit statuses GitHub holds for a commit, read for each branch and tag head (and for any commit a check_run,
check_suite or status webhook names), combined as GitHub combines them for a protected branch: every required
name passed (success, neutral, skipped), none failed, none still running or missing.

A name proves nothing: anyone who may push can run a workflow or post a status under any name. So an entry
counts only from a GitHub App in check_apps (default github-actions), from the app a branch protection rule
names, or from an account in status_creators; others are shown as not counting.

Reads are conditional (ETags per commit: an unchanged commit costs no rate-limit unit), and a commit whose
verdict is settled is read again only after RECHECK (webhooks bring changes sooner)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from django.utils import timezone

from deployer.integrations import github_checks
from deployer.integrations.github import GitHubRefused
from deployer.models import Branch, CommitChecks, Service, Tag

HEADS_READ = 25  # the newest branch and tag heads whose checks are kept (a page shows no more)
RECHECK = timedelta(minutes=10)
FORGET = timedelta(days=7)  # a commit no longer a head: its checks are dropped after this


@dataclass(frozen=True)
class Required:
    name: str
    app_id: int | None = None  # a branch protection rule's app: only its check runs count


@dataclass(frozen=True)
class Verdict:
    state: str  # success, failure or pending
    said: str  # what the gate and the page say, e.g. "lint failed (github-actions); test passed (github-actions)"


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


def verdict(service: Service, row: CommitChecks | None) -> Verdict | None:
    """The required checks of `row`'s commit, combined; None when nothing is required (the workflow runs gate)."""
    required = required_of(service)
    if not required:
        return None
    if row is None or row.read_at is None:
        return Verdict("pending", "GitHub's checks of it have not been read yet (Refresh reads them)")
    results = [_result(service, want, row.contexts) for want in required]
    for state in ("failure", "pending"):
        if any(found == state for found, _ in results):
            return Verdict(state, "; ".join(said for found, said in results if found == state))
    return Verdict("success", "; ".join(said for _, said in results))


def commit_verdict(service: Service, sha: str) -> Verdict | None:
    """`verdict` of `sha`'s checks as last read (one query; none when nothing is required)."""
    if not checks_wanted(service):
        return None
    return verdict(service, CommitChecks.objects.filter(service=service, sha=sha).first())


def verdicts_of(service: Service, shas: set[str]) -> dict[str, Verdict]:
    """`verdict` of each of `shas` (one query; empty when nothing is required)."""
    if not required_of(service):
        return {}
    rows = {row.sha: row for row in CommitChecks.objects.filter(service=service, sha__in=shas)}
    return {sha: found for sha in shas if (found := verdict(service, rows.get(sha))) is not None}


def _result(service: Service, want: Required, contexts: list[dict[str, Any]]) -> tuple[str, str]:
    named = [c for c in contexts if c.get("name") == want.name]
    counted = [c for c in named if _counts(service, want, c)]
    if counted:
        newest = max(counted, key=lambda c: (str(c.get("at", "")), int(c.get("id", 0))))
        return newest["state"], f"{want.name} {_word(newest)} ({newest['by']})"
    if named:
        posters = ", ".join(sorted({str(c.get("by") or "nobody") for c in named}))
        why = "not in check_apps or status_creators" if want.app_id is None else f"protection asks app {want.app_id}"
        return "pending", f"{want.name} reported only by {posters}, which does not count ({why})"
    return "pending", f"{want.name} not reported"


def _counts(service: Service, want: Required, context: dict[str, Any]) -> bool:
    wanted = service.github_actions or {}
    if want.app_id is not None:  # protection names the app: only its check runs
        return context.get("kind") == "check" and context.get("app_id") == want.app_id
    if context.get("kind") == "check":
        return context.get("by") in (wanted.get("check_apps") or [])
    return context.get("by") in (wanted.get("status_creators") or [])


def _word(context: dict[str, Any]) -> str:
    word = str(context.get("word") or "")
    return {"success": "passed", "failure": "failed", "error": "errored", "in_progress": "running"}.get(word, word)


def checks_sync(service: Service, etags: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Read the protection rule (when asked to) and the checks of the newest heads whose verdict is not
    settled or is older than RECHECK; return the new etags for the service's sync state and how many requests
    were made. github.GitHubError escapes (the caller records the failed sync)."""
    if not checks_wanted(service):
        return {}, 0
    requests, etags = 0, dict(etags)
    if (service.github_actions or {}).get("branch_protection"):
        try:
            etag, rules = github_checks.protection_checks(
                service.github_repo, service.default_branch, etag=str(etags.get("protection", ""))
            )
        except GitHubRefused as refused:
            raise GitHubRefused(
                f"{refused}; branch_protection: true reads the default branch's protection rule: give Gantry's "
                "token read access to the repository's administration, or name the checks in required_checks"
            ) from refused
        requests += 1
        etags["protection"] = etag
        if rules is not None and rules != service.protected_checks:
            Service.objects.filter(pk=service.pk).update(protected_checks=rules)
            service.protected_checks = rules
    heads = _heads(service)
    rows = {row.sha: row for row in CommitChecks.objects.filter(service=service, sha__in=heads)}
    stale = timezone.now() - RECHECK
    for sha in heads:
        row = rows.get(sha)
        settled = row is not None and row.read_at is not None and row.read_at > stale
        if settled and (found := verdict(service, row)) is not None and found.state != "pending":
            continue
        checks_read(service, sha)
        requests += 2
    CommitChecks.objects.filter(service=service, read_at__lt=timezone.now() - FORGET).exclude(sha__in=heads).delete()
    return etags, requests


def _heads(service: Service) -> list[str]:
    shas = list(Branch.objects.filter(service=service).values_list("sha", flat=True)[:HEADS_READ])
    shas += list(Tag.objects.filter(service=service).values_list("sha", flat=True)[:5])
    return list(dict.fromkeys(sha for sha in shas if sha))


def checks_read(service: Service, sha: str) -> bool:
    """Read `sha`'s check runs and statuses again (conditional on the last answers); whether anything changed."""
    row, _ = CommitChecks.objects.get_or_create(service=service, sha=sha)
    etags = dict(row.etags or {})
    checks_etag, checks = github_checks.check_runs(service.github_repo, sha, etag=str(etags.get("checks", "")))
    statuses_etag, statuses = github_checks.statuses(service.github_repo, sha, etag=str(etags.get("statuses", "")))
    contexts = list(row.contexts or [])
    if checks is not None:
        contexts = [c for c in contexts if c.get("kind") != "check"] + [asdict(c) for c in checks]
    if statuses is not None:
        contexts = [c for c in contexts if c.get("kind") != "status"] + [asdict(c) for c in statuses]
    changed = contexts != row.contexts
    row.contexts, row.read_at = contexts[:200], timezone.now()
    row.etags = {"checks": checks_etag, "statuses": statuses_etag}
    row.save(update_fields=["contexts", "etags", "read_at"])
    return changed
