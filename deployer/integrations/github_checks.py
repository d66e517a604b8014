"""What GitHub says about one commit: its check runs (GitHub Apps, GitHub Actions among them) and its commit
statuses (anything with write access), and which of them a branch's protection requires. Each read is
conditional on the last answer's ETag: an unchanged commit costs no rate-limit unit.

One page of each (100 entries): a commit with more check runs than that is beyond what a gate names. Each
entry keeps who posted it (the app's slug and id, the status creator's login), because a name alone proves
nothing: anyone who may push can post a status or run a workflow under any name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from deployer.integrations.github import PER_PAGE, GitHubUnavailable, _errors, _json, _raise_for, client

# A check run's conclusion in the gate's words: GitHub's branch protection lets neutral and skipped pass.
_CHECK_STATES = {"success": "success", "neutral": "success", "skipped": "success"}
_STATUS_STATES = {"success": "success", "pending": "pending", "failure": "failure", "error": "failure"}


@dataclass(frozen=True)
class CheckContext:
    """The newest check run or commit status under one name from one poster."""

    name: str
    kind: str  # "check" (a check run) or "status" (a commit status)
    by: str  # the app's slug (check) or the creator's login (status)
    app_id: int | None
    state: str  # success, failure or pending (as a gate reads it)
    word: str  # what GitHub said: a conclusion, a status state, or a check run's status while it runs
    url: str
    at: str  # ISO 8601, as GitHub wrote it (they compare in order)
    id: int


def check_runs(repo: str, sha: str, *, etag: str = "") -> tuple[str, list[CheckContext] | None]:
    """The newest check run per (name, app) on `sha`: (new etag, contexts), contexts None on a 304."""
    # Reference: https://docs.github.com/en/rest/checks/runs#list-check-runs-for-a-git-reference
    etag, data = _conditional_get(f"/repos/{repo}/commits/{sha}/check-runs", {"per_page": PER_PAGE}, etag)
    if data is None:
        return etag, None
    items = data.get("check_runs") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise GitHubUnavailable("GitHub's check runs answer has no check_runs list")
    return etag, _newest(_check_of(item) for item in items)


def statuses(repo: str, sha: str, *, etag: str = "") -> tuple[str, list[CheckContext] | None]:
    """The newest commit status per (context, creator) on `sha`: (new etag, contexts), None on a 304."""
    # Reference: https://docs.github.com/en/rest/commits/statuses#list-commit-statuses-for-a-reference
    etag, data = _conditional_get(f"/repos/{repo}/commits/{sha}/statuses", {"per_page": PER_PAGE}, etag)
    if data is None:
        return etag, None
    if not isinstance(data, list):
        raise GitHubUnavailable("GitHub's commit statuses answer is not a list")
    return etag, _newest(_status_of(item) for item in data)


def protection_checks(repo: str, branch: str, *, etag: str = "") -> tuple[str, list[dict[str, Any]] | None]:
    """The checks `branch`'s protection requires ([{context, app_id}]; [] when it is not protected or requires
    none), None on a 304. A token without read access to the repository's administration is refused (403)."""
    # Reference: https://docs.github.com/en/rest/branches/branch-protection#get-status-checks-protection
    path = f"/repos/{repo}/branches/{quote(branch, safe='')}/protection/required_status_checks"
    try:
        etag, data = _conditional_get(path, None, etag, absent_ok=True)
    except _Absent:
        return "", []
    if data is None:
        return etag, None
    if not isinstance(data, dict):
        raise GitHubUnavailable("GitHub's required status checks answer is not an object")
    found: dict[str, dict[str, Any]] = {}
    for check in data.get("checks") or []:
        if isinstance(check, dict) and isinstance(check.get("context"), str):
            app_id = check.get("app_id") if isinstance(check.get("app_id"), int) else None
            found[check["context"]] = {"context": check["context"], "app_id": app_id}
    for context in data.get("contexts") or []:  # the older spelling: names without an app
        if isinstance(context, str):
            found.setdefault(context, {"context": context, "app_id": None})
    return etag, list(found.values())[:50]


class _Absent(Exception):
    """404: the branch has no protection (or no required status checks)."""


def _conditional_get(
    path: str, params: dict[str, Any] | None, etag: str, *, absent_ok: bool = False
) -> tuple[str, Any]:
    headers = {"If-None-Match": etag} if etag else {}
    with _errors():
        status, response_headers, body = client().requester.requestJson("GET", path, params, headers)
    if status == 304:
        return etag, None
    data = _json(body)
    if status == 404 and absent_ok:
        raise _Absent()
    if status != 200:
        _raise_for(status, response_headers, data)
    return response_headers.get("etag", ""), data


def _check_of(item: Any) -> CheckContext | None:
    try:
        app = item.get("app") or {}
        done = item.get("status") == "completed"
        conclusion = str(item.get("conclusion") or "")
        return CheckContext(
            name=str(item["name"])[:255],
            kind="check",
            by=str(app.get("slug") or "")[:100],
            app_id=int(app["id"]) if app.get("id") is not None else None,
            state=_CHECK_STATES.get(conclusion, "failure") if done else "pending",
            word=conclusion if done else str(item.get("status") or ""),
            url=str(item.get("html_url") or item.get("details_url") or "")[:1000],
            at=str(item.get("completed_at") or item.get("started_at") or ""),
            id=int(item["id"]),
        )
    except (AttributeError, KeyError, TypeError, ValueError):
        return None  # an entry GitHub describes oddly is left out, not the list


def _status_of(item: Any) -> CheckContext | None:
    try:
        word = str(item["state"])
        return CheckContext(
            name=str(item["context"])[:255],
            kind="status",
            by=str((item.get("creator") or {}).get("login") or "")[:100],
            app_id=None,
            state=_STATUS_STATES.get(word, "failure"),
            word=word,
            url=str(item.get("target_url") or "")[:1000],
            at=str(item.get("updated_at") or item.get("created_at") or ""),
            id=int(item["id"]),
        )
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def _newest(contexts: Any) -> list[CheckContext]:
    newest: dict[tuple[str, str, str], CheckContext] = {}
    for context in contexts:
        if context is None:
            continue
        key = (context.kind, context.name, context.by)
        if key not in newest or (context.at, context.id) > (newest[key].at, newest[key].id):
            newest[key] = context
    return list(newest.values())
