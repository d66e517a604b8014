"""GitHub's REST API, through PyGithub: the one module that talks to GitHub.

Every call has a timeout. PyGithub's own retry is replaced: only GET is
retried, only on 502/503/504 and connection errors, never by sleeping until
a rate-limit reset (that would hold a worker for up to an hour) and never
re-sending a POST. Branch lists use conditional requests page by page, with
the ETags the caller keeps, so an unchanged repository costs no rate limit.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
import urllib3
from django.conf import settings
from github import Auth, Github, GithubException, RateLimitExceededException
from urllib3.util.retry import Retry


class GitHubError(Exception):
    """A GitHub call failed; `retryable` says whether trying again later can help."""

    retryable = False


class GitHubUnavailable(GitHubError):
    """Timeout, connection failure or a 5xx: GitHub may be back soon."""

    retryable = True


class GitHubRateLimited(GitHubError):
    """The rate-limit budget is spent until `reset_at`."""

    retryable = True

    def __init__(self, message: str, reset_at: datetime | None) -> None:
        super().__init__(message)
        self.reset_at = reset_at


class GitHubRefused(GitHubError):
    """GitHub said no (401, 404, 422...): a setting or the catalog needs fixing."""


PER_PAGE = 100  # GitHub's largest page


@dataclass(frozen=True)
class RateLimit:
    limit: int
    remaining: int
    reset_at: datetime | None


@dataclass(frozen=True)
class BranchHead:
    name: str
    sha: str


@dataclass(frozen=True)
class Page:
    """One page of a branch list: `heads` is None when GitHub answered 304 Not Modified."""

    url: str
    etag: str
    heads: list[BranchHead] | None
    next_url: str | None


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    author: str
    message: str
    committed_at: datetime | None


def enabled() -> bool:
    return bool(settings.GITHUB_TOKEN)


def commit_url(repo: str, sha: str) -> str:
    return f"{settings.GITHUB_WEB_URL}/{repo}/commit/{sha}"


@functools.cache
def _client(api_url: str, token: str, timeout: int) -> Github:
    retry = Retry(
        total=2,
        connect=2,
        read=0,  # a read timeout is not retried: a hanging GitHub costs one timeout, not three
        status=2,
        status_forcelist=(502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD"}),
        backoff_factor=0.3,
        raise_on_status=False,
        respect_retry_after_header=False,
    )
    return Github(
        auth=Auth.Token(token),
        base_url=api_url,
        timeout=timeout,
        retry=retry,
        per_page=100,
        seconds_between_requests=0,
        seconds_between_writes=1.0,  # GitHub asks for a pause between writes
        lazy=True,
    )


def client() -> Github:
    return _client(settings.GITHUB_API_URL, settings.GITHUB_TOKEN, settings.GITHUB_TIMEOUT)


def rate_limit_seen() -> RateLimit | None:
    """The budget as of the last answer this process got (no request is made)."""
    requester = client().requester
    remaining, limit = requester.rate_limiting
    if limit < 0:
        return None
    reset = requester.rate_limiting_resettime
    return RateLimit(limit, remaining, datetime.fromtimestamp(reset, tz=UTC) if reset else None)


def _reset_at(headers: dict[str, Any]) -> datetime | None:
    value = headers.get("x-ratelimit-reset") or headers.get("X-RateLimit-Reset")
    return datetime.fromtimestamp(int(float(value)), tz=UTC) if value else None


def _limit_lifts_at(headers: dict[str, Any]) -> datetime | None:
    """When GitHub takes requests again: after `Retry-After` when it says so (a secondary limit: seconds, not
    the hour the primary budget may take); at the primary reset when that budget is spent; otherwise in a
    minute, as GitHub's documentation advises for a secondary limit without `Retry-After`."""
    lower = {str(key).lower(): value for key, value in headers.items()}
    retry_after = str(lower.get("retry-after", "")).strip()
    if retry_after.isdigit():
        return datetime.now(UTC) + timedelta(seconds=min(int(retry_after), SECONDARY_WAIT_MAX_SECONDS))
    if lower.get("x-ratelimit-remaining") == "0":
        return _reset_at(lower)
    return datetime.now(UTC) + timedelta(seconds=60)


SECONDARY_WAIT_MAX_SECONDS = 3600  # a Retry-After beyond an hour is GitHub's mistake or a proxy's: cap it


def _raise_for(status: int, headers: dict[str, Any], data: Any) -> None:
    message = data.get("message", "") if isinstance(data, dict) else str(data)[:200]
    remaining = headers.get("x-ratelimit-remaining")
    if status == 429 or (status == 403 and (remaining == "0" or "rate limit" in message.lower())):
        raise GitHubRateLimited(f"GitHub rate limit exceeded ({message})", _limit_lifts_at(headers))
    if status >= 500:
        raise GitHubUnavailable(f"GitHub answered HTTP {status}: {message}")
    raise GitHubRefused(f"GitHub answered HTTP {status}: {message}")


@contextmanager
def _errors() -> Iterator[None]:
    """PyGithub's and requests' exceptions → GitHubError subclasses."""
    try:
        yield
    except RateLimitExceededException as exc:
        message = exc.data.get("message", "") if isinstance(exc.data, dict) else exc.data
        raise GitHubRateLimited(f"GitHub rate limit exceeded ({message})", _limit_lifts_at(exc.headers or {})) from exc
    except GithubException as exc:
        try:
            _raise_for(exc.status, exc.headers or {}, exc.data)
        except GitHubError as mapped:
            raise mapped from exc
    except requests.RequestException as exc:
        if _is_timeout(exc):
            raise GitHubUnavailable(f"GitHub did not answer within {settings.GITHUB_TIMEOUT} s") from exc
        raise GitHubUnavailable(f"cannot reach GitHub: {exc.__class__.__name__}") from exc
    except OSError as exc:
        raise GitHubUnavailable(f"cannot reach GitHub: {exc.__class__.__name__}") from exc


def _is_timeout(exc: requests.RequestException) -> bool:
    """requests reports a read timeout under urllib3's retry as a ConnectionError wrapping it."""
    if isinstance(exc, requests.Timeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, TimeoutError | urllib3.exceptions.TimeoutError)


def branches_page(repo: str, *, url: str | None = None, etag: str = "", kind: str = "branches") -> Page:
    """One page of `repo`'s branches (or, with kind="tags", its tags), conditional on `etag`.

    PyGithub's paginated lists cannot send If-None-Match, so this goes through
    its requester and follows GitHub's `Link: rel="next"` URLs itself. Both lists answer
    [{name, commit: {sha}}]; a tag's commit is peeled (an annotated tag's commit, not the tag object).
    """
    # Reference: https://docs.github.com/en/rest/branches/branches#list-branches and
    # https://docs.github.com/en/rest/repos/repos#list-repository-tags
    assert kind in ("branches", "tags")
    path = url or f"/repos/{repo}/{kind}"
    params = None if url else {"per_page": PER_PAGE}
    headers = {"If-None-Match": etag} if etag else {}
    with _errors():
        status, response_headers, body = client().requester.requestJson("GET", path, params, headers)
    if status == 304:
        return Page(path, etag, None, _next_link(response_headers.get("link", "")))
    data = _json(body)
    if status != 200:
        _raise_for(status, response_headers, data)
    heads = [BranchHead(item["name"], item["commit"]["sha"]) for item in data]
    return Page(path, response_headers.get("etag", ""), heads, _next_link(response_headers.get("link", "")))


def branches_page_url(repo: str, number: int, kind: str = "branches") -> str:
    """The URL of page `number` of `repo`'s branch (or tag) list, for a page no `Link` named yet."""
    return f"/repos/{repo}/{kind}?per_page={PER_PAGE}&page={number}"


def _json(body: str) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError as exc:
        raise GitHubUnavailable(f"GitHub sent something that is not JSON: {body[:80]!r}") from exc


def _next_link(header: str) -> str | None:
    for part in header.split(","):
        if 'rel="next"' in part:
            return part.split(";")[0].strip().strip("<>")
    return None


def commit_info(repo: str, sha: str) -> CommitInfo:
    """Author, date and first line of a commit (one request)."""
    # Reference: https://docs.github.com/en/rest/commits/commits#get-a-commit
    with _errors():
        commit = client().get_repo(repo).get_commit(sha)
        git = commit.commit
        return CommitInfo(sha, git.author.name or "", (git.message or "").split("\n", 1)[0], git.author.date)


def branch_head(repo: str, name: str) -> CommitInfo | None:
    """The head commit of one branch, or None if the branch does not exist (one request)."""
    # Reference: https://docs.github.com/en/rest/branches/branches#get-a-branch
    try:
        with _errors():
            branch = client().get_repo(repo).get_branch(name)
            git = branch.commit.commit
            message = (git.message or "").split("\n", 1)[0]
            return CommitInfo(branch.commit.sha, git.author.name or "", message, git.author.date)
    except GitHubRefused:
        return None


DEPLOYMENT_PAGES_SEARCHED = 3  # Gantry's deployment of a deploy is among the newest 300 of its sha and environment


def deployment_find(repo: str, *, sha: str, environment: str, deploy_id: int) -> int | None:
    """The GitHub deployment Gantry made earlier for `deploy_id`, if any.

    Used before creating one, so a POST whose answer was lost is never sent twice.
    Deployments other tools made (another payload, a string one) are skipped.
    Reads the pages itself: PyGithub's Deployment refuses a payload that is not
    an object, and would fetch each deployment again to show its raw JSON.
    """
    # Reference: https://docs.github.com/en/rest/deployments/deployments#list-deployments
    url: str | None = f"/repos/{repo}/deployments"
    params: dict[str, Any] | None = {"sha": sha, "environment": environment, "per_page": PER_PAGE}
    for _ in range(DEPLOYMENT_PAGES_SEARCHED):
        if url is None:
            break
        with _errors():
            status, headers, body = client().requester.requestJson("GET", url, params, {})
        data = _json(body)
        if status != 200:
            _raise_for(status, headers, data)
        for deployment in data if isinstance(data, list) else []:
            payload = deployment.get("payload") if isinstance(deployment, dict) else None
            if isinstance(payload, dict) and payload.get("gantry_deploy_id") == deploy_id:
                return int(deployment["id"])
        url, params = _next_link(headers.get("link", "")), None
    return None


def deployment_create(
    repo: str, *, sha: str, environment: str, deploy_id: int, description: str, production: bool
) -> int:
    """Create a deployment of exactly `sha` (no auto-merge, no required status contexts)."""
    # Reference: https://docs.github.com/en/rest/deployments/deployments#create-a-deployment
    with _errors():
        deployment = (
            client()
            .get_repo(repo)
            .create_deployment(
                ref=sha,
                task="deploy",
                auto_merge=False,
                required_contexts=[],
                payload={"gantry_deploy_id": deploy_id},
                environment=environment,
                description=description[:140],
                transient_environment=False,
                production_environment=production,
            )
        )
        return deployment.id


def deployment_status_create(
    repo: str, deployment_id: int, *, state: str, log_url: str, description: str, environment: str
) -> None:
    # Reference: https://docs.github.com/en/rest/deployments/statuses#create-a-deployment-status
    with _errors():
        deployment = client().get_repo(repo).get_deployment(deployment_id)
        deployment.create_status(
            state, target_url=log_url, description=description[:140], environment=environment, auto_inactive=True
        )
