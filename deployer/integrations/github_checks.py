"""What GitHub says about one commit: its check runs (GitHub Apps, GitHub Actions among them) and its commit
statuses (anything with write access), and which of them a branch's protection requires. Each read is
conditional on the last answer's ETag: an unchanged commit costs no rate-limit unit.

Up to PAGES pages of each (100 entries a page): a commit with more is beyond what a gate names, and what is
past them stays unread (the gate then waits: it fails closed). Each entry keeps who posted it (the app's slug
and id, and a check run's suite, which ties a GitHub Actions job to its workflow run; the status creator's
login), because a name alone proves nothing: anyone who may push can post a status or run a workflow under
any name. Within one poster, the newest entry is the one with the highest id (GitHub numbers them in order;
the times in them are the poster's to write)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from deployer.integrations.github import PER_PAGE, GitHubUnavailable, _errors, _json, _next_link, _raise_for, client

# A check run's conclusion in the gate's words: GitHub's branch protection lets neutral and skipped pass.
_CHECK_STATES = {"success": "success", "neutral": "success", "skipped": "success"}
_STATUS_STATES = {"success": "success", "pending": "pending", "failure": "failure", "error": "failure"}
PAGES = 5


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
    id: int
    suite_id: int | None = None  # a check run's check suite


def check_runs(repo: str, sha: str, *, etag: str = "") -> tuple[str, list[CheckContext] | None]:
    """The newest check run per (name, app) on `sha`: (new etag, contexts), contexts None on a 304."""
    # Reference: https://docs.github.com/en/rest/checks/runs#list-check-runs-for-a-git-reference
    # filter=all: "latest" keeps one run per name, and a pull request's run of a name may hide a push's.
    etag, pages = _pages(f"/repos/{repo}/commits/{sha}/check-runs", etag, {"filter": "all"})
    if pages is None:
        return etag, None
    items = []
    for data in pages:
        found = data.get("check_runs") if isinstance(data, dict) else None
        if not isinstance(found, list):
            raise GitHubUnavailable("GitHub's check runs answer has no check_runs list")
        items += found
    return etag, _newest(_check_of(item) for item in items)


def statuses(repo: str, sha: str, *, etag: str = "") -> tuple[str, list[CheckContext] | None]:
    """The newest commit status per (context, creator) on `sha`: (new etag, contexts), None on a 304."""
    # Reference: https://docs.github.com/en/rest/commits/statuses#list-commit-statuses-for-a-reference
    etag, pages = _pages(f"/repos/{repo}/commits/{sha}/statuses", etag)
    if pages is None:
        return etag, None
    if not all(isinstance(data, list) for data in pages):
        raise GitHubUnavailable("GitHub's commit statuses answer is not a list")
    return etag, _newest(_status_of(item) for data in pages for item in data)


def protection_checks(repo: str, branch: str, *, etag: str = "") -> tuple[str, list[dict[str, Any]] | None]:
    """The checks `branch`'s protection requires ([{context, app_id}]; [] when it is not protected or requires
    none), None on a 304. A token without read access to the repository's administration is refused (403)."""
    # Reference: https://docs.github.com/en/rest/branches/branch-protection#get-status-checks-protection
    path = f"/repos/{repo}/branches/{quote(branch, safe='')}/protection/required_status_checks"
    try:
        etag, data, _ = _conditional_get(path, None, etag, absent_ok=True)
    except _Absent:
        return "", []
    if data is None:
        return etag, None
    if not isinstance(data, dict):
        raise GitHubUnavailable("GitHub's required status checks answer is not an object")
    found: dict[str, dict[str, Any]] = {}
    checks, contexts = data.get("checks"), data.get("contexts")
    for check in checks if isinstance(checks, list) else []:
        if isinstance(check, dict) and isinstance(check.get("context"), str):
            app_id = check.get("app_id") if isinstance(check.get("app_id"), int) else None
            found[check["context"]] = {"context": check["context"], "app_id": app_id}
    for context in contexts if isinstance(contexts, list) else []:  # the older spelling: names without an app
        if isinstance(context, str):
            found.setdefault(context, {"context": context, "app_id": None})
    return etag, list(found.values())[:50]


class _Absent(Exception):
    """404: the branch has no protection (or no required status checks)."""


def _pages(path: str, etag: str, params: dict[str, Any] | None = None) -> tuple[str, list[Any] | None]:
    """The first page conditional on `etag` (a list GitHub shows newest first changes its first page when it
    changes), then up to PAGES - 1 more by the `Link` header."""
    etag, data, url = _conditional_get(path, {"per_page": PER_PAGE, **(params or {})}, etag)
    if data is None:
        return etag, None
    pages = [data]
    while url and len(pages) < PAGES:
        _, data, url = _conditional_get(url, None, "")
        pages.append(data)
    return etag, pages


def _conditional_get(
    path: str, params: dict[str, Any] | None, etag: str, *, absent_ok: bool = False
) -> tuple[str, Any, str | None]:
    """(new etag, the answer's JSON or None on a 304, the next page's URL)."""
    headers = {"If-None-Match": etag} if etag else {}
    with _errors():
        status, response_headers, body = client().requester.requestJson("GET", path, params, headers)
    if status == 304:
        return etag, None, None
    data = _json(body)
    if status == 404 and absent_ok:
        raise _Absent()
    if status != 200:
        _raise_for(status, response_headers, data)
    return response_headers.get("etag", ""), data, _next_link(response_headers.get("link", ""))


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
            id=int(item["id"]),
            suite_id=_int_or_none((item.get("check_suite") or {}).get("id")),
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
            id=int(item["id"]),
        )
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def _newest(contexts: Any) -> list[CheckContext]:
    # Per suite too: a pull request's run and a push's run of one workflow both post `test` as github-actions.
    newest: dict[tuple[str, str, str, int | None], CheckContext] = {}
    for context in contexts:
        if context is None:
            continue
        key = (context.kind, context.name, context.by, context.suite_id)
        if key not in newest or context.id > newest[key].id:
            newest[key] = context
    return list(newest.values())


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
