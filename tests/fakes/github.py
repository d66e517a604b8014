"""A fake GitHub REST API for tests, served like GitHub Enterprise under /api/v3.

It answers as api.github.com does (see shared/contracts/github): the same JSON
fields, absolute URLs that carry this server's own base URL (PyGithub refuses
other hosts), `Link` pagination through /repositories/<id>/..., weak ETags with
304 answers that cost no rate limit, X-RateLimit-* headers on every answer,
and 403 (or 429) once the budget is spent. Also builds webhook bodies and
signatures as GitHub sends them.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import itertools
import json
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlencode

from tests.fakes.github_checks import GitHubChecks
from tests.fakes.github_people import GitHubPeople
from tests.fakes.server import FakeServer, Request, Response

ZERO_SHA = "0" * 40
DOCS = "https://docs.github.com/rest"


@dataclass
class FakeCommit:
    sha: str
    message: str
    author: str
    email: str
    date: datetime
    parents: list[str]


@dataclass
class FakeRepo:
    id: int
    full_name: str
    default_branch: str
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)  # GitHub Actions workflow runs, oldest first
    artifacts: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # run id -> what it uploaded
    commits: dict[str, FakeCommit] = field(default_factory=dict)
    deployments: list[dict[str, Any]] = field(default_factory=list)
    statuses: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


class FakeGitHub(FakeServer):
    def __init__(self, token: str = "test-token", rate_limit: int = 5000) -> None:
        super().__init__()
        self.token = token
        self.repos: dict[str, FakeRepo] = {}
        self.rate_limit = rate_limit
        self.rate_remaining = rate_limit
        self.rate_reset = int(time.time()) + 3600
        self.exhausted_status = 403
        self.secondary_left = 0  # requests still refused by the secondary rate limit
        self.secondary_retry_after: int | None = 60
        self.units_spent = 0
        self._ids = itertools.count(1000)
        self._shas = itertools.count(1)
        self.data_lock = threading.RLock()
        prefix = "/api/v3"
        repo = r"/repos/([^/]+/[^/]+)"
        self.route("GET", prefix + "/rate_limit", self._rate_limit_answer)
        self.checks = GitHubChecks(self)  # (its routes first: /branches/(.+) would take the protection path)
        self.route("GET", prefix + repo, self._repo)
        self.route("GET", prefix + repo + "/branches", self._branches_by_name)
        self.route("GET", prefix + r"/repositories/(\d+)/branches", self._branches_by_id)
        self.route("GET", prefix + repo + "/branches/(.+)", self._branch)
        self.route("GET", prefix + repo + "/tags", self._tags_by_name)
        self.route("GET", prefix + repo + "/actions/runs", self._runs)
        self.route("GET", prefix + repo + r"/actions/runs/(\d+)/artifacts", self._run_artifacts)
        self.route("GET", prefix + repo + r"/actions/artifacts/(\d+)/zip", self._artifact_zip)
        self.blobs: dict[str, bytes] = {}
        self.blob_authorizations: list[str] = []
        self.route("GET", prefix + r"/repositories/(\d+)/tags", self._tags_by_id)
        self.route("GET", prefix + repo + "/commits/([0-9a-f]{40})", self._commit)
        self.route("GET", prefix + repo + "/deployments", self._deployments)
        self.route("GET", prefix + r"/repositories/(\d+)/deployments", self._deployments_by_id)
        self.route("POST", prefix + repo + "/deployments", self._deployment_create)
        self.route("GET", prefix + repo + r"/deployments/(\d+)", self._deployment)
        self.route("GET", prefix + repo + r"/deployments/(\d+)/statuses", self._statuses)
        self.route("GET", prefix + r"/repositories/(\d+)/deployments/(\d+)/statuses", self._statuses_by_id)
        self.route("POST", prefix + repo + r"/deployments/(\d+)/statuses", self._status_create)
        self.people = GitHubPeople(self)  # OAuth sign-in, and what a person's token reads

    def route(self, method: str, pattern: str, handler: Callable[..., Response]) -> None:
        """As GitHub does, a path's parts are percent-decoded (a branch `a+b`, `a@b` or `é` arrives encoded)."""

        def decoded(request: Request, *parts: str) -> Response:
            return handler(request, *(unquote(part) for part in parts))

        super().route(method, pattern, decoded)

    @property
    def api_url(self) -> str:
        return self.url + "/api/v3"

    # --- arranging the world ---------------------------------------------------

    def add_repo(self, full_name: str, *, default_branch: str = "main", branches: int = 1) -> FakeRepo:
        """A repository whose default branch has one commit, plus `branches - 1` feature branches."""
        with self.data_lock:
            repo = FakeRepo(next(self._ids), full_name, default_branch)
            self.repos[full_name] = repo
            root = self.commit(full_name, default_branch, "Initial commit")
            for n in range(1, branches):
                repo.branches[f"feature/b{n:03d}"] = root
                self.commit(full_name, f"feature/b{n:03d}", f"Work on b{n:03d}")
            return repo

    def commit(self, full_name: str, branch: str, message: str, *, author: str = "Ada Lovelace") -> str:
        """Push a new commit on `branch` (creating the branch from the default one); return its sha."""
        with self.data_lock:
            repo = self.repos[full_name]
            parent = repo.branches.get(branch) or repo.branches.get(repo.default_branch)
            sha = hashlib.sha1(f"{full_name}:{branch}:{next(self._shas)}".encode()).hexdigest()
            date = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=next(self._shas))
            email = author.lower().replace(" ", ".") + "@example.com"
            repo.commits[sha] = FakeCommit(sha, message, author, email, date, [parent] if parent else [])
            repo.branches[branch] = sha
            return sha

    def push_existing(
        self, full_name: str, branch: str, sha: str, message: str, *, author: str = "Ada Lovelace"
    ) -> None:
        """Point `branch` at `sha`, a commit that exists in a real repository the test made."""
        with self.data_lock:
            repo = self.repos[full_name]
            email = author.lower().replace(" ", ".") + "@example.com"
            date = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=next(self._shas))
            repo.commits.setdefault(sha, FakeCommit(sha, message, author, email, date, []))
            repo.branches[branch] = sha

    def reset(self) -> None:
        with self.data_lock:
            self.repos.clear()
            self.people.reset()
            self.checks.reset()
            self.heal()
            self.reset_counters()
            self.refill()
            self.units_spent = 0
            self.exhausted_status = 403

    def add_tag(self, full_name: str, name: str, sha: str) -> None:
        """Tag `sha` (a commit of the repository) as `name`; the tag list answers with it (GitHub peels it)."""
        with self.data_lock:
            self.repos[full_name].tags[name] = sha

    def add_run(
        self,
        full_name: str,
        sha: str,
        *,
        branch: str = "main",
        path: str = ".github/workflows/ci.yml",
        event: str = "push",
        status: str = "completed",
        conclusion: str | None = "success",
    ) -> dict[str, Any]:
        """A GitHub Actions workflow run of `sha` (as the runs list and the workflow_run webhook show it)."""
        with self.data_lock:
            repo = self.repos[full_name]
            run_id = next(self._ids)
            number = 1 + sum(1 for r in repo.runs if r["path"] == path)
            api = f"{self.api_url}/repos/{full_name}/actions/runs/{run_id}"
            commit = repo.commits.get(sha)
            when = "2026-12-01T10:00:00Z"
            person = {"name": commit.author if commit else "Ada Lovelace", "email": "ada@example.com"}
            run = {
                "id": run_id,
                "node_id": f"WFR_{run_id}",
                "name": "CI",
                "head_branch": branch,
                "head_sha": sha,
                "path": path,
                "display_title": commit.message if commit else "Build",
                "run_number": number,
                "run_attempt": 1,
                "event": event,
                "status": status,
                "conclusion": conclusion,
                "workflow_id": 7000 + len(path),
                "check_suite_id": run_id + 1,
                "check_suite_node_id": f"CS_{run_id}",
                "url": api,
                "html_url": f"{self.url}/{full_name}/actions/runs/{run_id}",
                "pull_requests": [],
                "created_at": when,
                "updated_at": "2026-12-01T10:03:20Z",
                "run_started_at": when,
                "jobs_url": f"{api}/jobs",
                "logs_url": f"{api}/logs",
                "check_suite_url": f"{self.api_url}/repos/{full_name}/check-suites/{run_id + 1}",
                "artifacts_url": f"{api}/artifacts",
                "cancel_url": f"{api}/cancel",
                "rerun_url": f"{api}/rerun",
                "workflow_url": f"{self.api_url}/repos/{full_name}/actions/workflows/{7000 + len(path)}",
                "head_commit": {
                    "id": sha,
                    "tree_id": hashlib.sha1(sha.encode()).hexdigest(),
                    "message": commit.message if commit else "Build",
                    "timestamp": when,
                    "author": person,
                    "committer": person,
                },
                "repository": self._minimal_repo(repo),
                "head_repository": self._minimal_repo(repo),
            }
            repo.runs.append(run)
            return run

    def add_artifact(
        self, full_name: str, run: dict[str, Any], name: str, files: dict[str, bytes], *, digest: str | None = ""
    ) -> dict[str, Any]:
        """An artifact `run` uploaded (a zip of `files`); `digest` None as upload-artifact before v4 leaves it,
        "" for the true sha256 of the zip, or any other value (a tampered one)."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zipped:
            for file_name, content in files.items():
                zipped.writestr(file_name, content)
        data = buffer.getvalue()
        with self.data_lock:
            repo = self.repos[full_name]
            artifact_id = next(self._ids)
            self.blobs[str(artifact_id)] = data
            api = f"{self.api_url}/repos/{full_name}/actions/artifacts/{artifact_id}"
            artifact = {
                "id": artifact_id,
                "node_id": f"MDg6QXJ0aWZhY3Q{artifact_id}",
                "name": name,
                "size_in_bytes": len(data),
                "url": api,
                "archive_download_url": f"{api}/zip",
                "expired": False,
                "created_at": "2026-12-01T10:03:00Z",
                "expires_at": "2027-03-01T10:03:00Z",
                "updated_at": "2026-12-01T10:03:00Z",
                "digest": None if digest is None else (digest or f"sha256:{hashlib.sha256(data).hexdigest()}"),
                "workflow_run": {
                    "id": run["id"],
                    "repository_id": repo.id,
                    "head_repository_id": repo.id,
                    "head_branch": run["head_branch"],
                    "head_sha": run["head_sha"],
                },
            }
            repo.artifacts.setdefault(run["id"], []).append(artifact)
            return artifact

    def _run_artifacts(self, request: Request, full_name: str, run_id: str) -> Response:
        repo = self._repo_or_none(full_name)
        if repo is None:
            return self.not_found(request)
        with self.data_lock:
            found = list(repo.artifacts.get(int(run_id), []))
        return self._conditional(request, {"total_count": len(found), "artifacts": found})

    def _artifact_zip(self, request: Request, full_name: str, artifact_id: str) -> Response:
        """GitHub answers 302 to a short-lived signed storage URL (another host, in GitHub's case)."""
        if artifact_id not in self.blobs:
            return self.not_found(request)
        return Response(302, None, {"Location": f"{self.url}/_blobs/{artifact_id}?sig=short-lived"})

    def _blob(self, request: Request, artifact_id: str) -> Response:
        data = self.blobs.get(artifact_id.split("?", 1)[0])
        return Response(200, data) if data is not None else Response(404, "no such blob")

    def run_update(self, full_name: str, run_id: int, *, status: str, conclusion: str | None) -> dict[str, Any]:
        with self.data_lock:
            run = next(r for r in self.repos[full_name].runs if r["id"] == run_id)
            run.update(status=status, conclusion=conclusion, updated_at="2026-12-01T10:05:00Z")
            return dict(run)

    def _minimal_repo(self, repo: FakeRepo) -> dict[str, Any]:
        """GitHub's "minimal-repository": the full one's fields validate as it (house/test_github_fake_schema.py)."""
        return self._repo_json(repo)

    def _runs(self, request: Request, full_name: str) -> Response:
        """The newest runs first, filtered by head_sha/branch/event as GitHub does, per_page at most 100."""
        repo = self._repo_or_none(full_name)
        if repo is None:
            return self.not_found(request)
        per_page = min(max(int(request.query.get("per_page", 30)), 1), 100)
        with self.data_lock:
            runs = [dict(r) for r in reversed(repo.runs)]
        for key, field_name in (("head_sha", "head_sha"), ("branch", "head_branch"), ("event", "event")):
            if request.query.get(key):
                runs = [r for r in runs if r[field_name] == request.query[key]]
        return self._conditional(request, {"total_count": len(runs), "workflow_runs": runs[:per_page]})

    def delete_tag(self, full_name: str, name: str) -> None:
        with self.data_lock:
            del self.repos[full_name].tags[name]

    def delete_branch(self, full_name: str, branch: str) -> None:
        with self.data_lock:
            del self.repos[full_name].branches[branch]

    def exhaust(self, *, status: int = 403) -> None:
        """Spend the whole rate-limit budget; the next counted request gets `status` (403 or 429)."""
        self.rate_remaining = 0
        self.exhausted_status = status

    def refill(self) -> None:
        self.rate_remaining = self.rate_limit

    def secondary_limit(self, *, requests: int, retry_after: int | None = 60, status: int = 403) -> None:
        """Refuse the next `requests` requests with GitHub's secondary rate limit (the primary budget left
        untouched): `status` 403 or 429, with `Retry-After` unless it is None."""
        self.secondary_left = requests
        self.secondary_retry_after = retry_after
        self.exhausted_status = status

    def add_foreign_deployment(self, full_name: str, *, sha: str, environment: str, payload: Any) -> int:
        """A deployment another tool made (its own `payload`, a string or any JSON; its own environment)."""
        with self.data_lock:
            deployment = self._deployment_json(self.repos[full_name], sha, environment, payload, "other-tool")
            self.repos[full_name].deployments.append(deployment)
            self.repos[full_name].statuses[deployment["id"]] = []
            return int(deployment["id"])

    # --- plumbing ----------------------------------------------------------------

    def dispatch(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        if request.path.startswith("/_blobs/"):  # the storage an artifact's download redirects to: signed URL
            self.blob_authorizations.append(auth)  # what a client sent there (GitHub's token must not go)
            return self._blob(request, request.path.rsplit("/", 1)[-1])
        if request.path.startswith(("/login/oauth/", "/api/v3/applications/")):  # the app's own secret, no token
            return super().dispatch(request)
        if auth not in {f"token {self.token}", f"Bearer {self.token}"} and not self.people.token_owner(auth):
            return Response(401, {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"})
        if request.path.endswith("/rate_limit"):
            return self._with_rate_headers(super().dispatch(request))
        if self.rate_remaining <= 0:
            body = {"message": "API rate limit exceeded for user ID 1.", "documentation_url": DOCS}
            return self._with_rate_headers(Response(self.exhausted_status, body))
        if self.secondary_left > 0:
            self.secondary_left -= 1
            body = {
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
            }
            after = {} if self.secondary_retry_after is None else {"Retry-After": str(self.secondary_retry_after)}
            return self._with_rate_headers(Response(self.exhausted_status, body, after))
        response = super().dispatch(request)
        if response.status != 304:
            self.rate_remaining -= 1
            self.units_spent += 1
        return self._with_rate_headers(response)

    def _with_rate_headers(self, response: Response) -> Response:
        response.headers.update(
            {
                "X-RateLimit-Limit": str(self.rate_limit),
                "X-RateLimit-Remaining": str(self.rate_remaining),
                "X-RateLimit-Reset": str(self.rate_reset),
                "X-RateLimit-Used": str(self.rate_limit - self.rate_remaining),
                "X-RateLimit-Resource": "core",
                "X-GitHub-Media-Type": "github.v3; format=json",
                "X-GitHub-Request-Id": f"FAKE:{len(self.requests):08X}",
            }
        )
        return response

    def not_found(self, request: Request) -> Response:
        return Response(404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"})

    def _conditional(self, request: Request, body: Any, headers: dict[str, str] | None = None) -> Response:
        """200 with a weak ETag, or 304 when the client already has this representation."""
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        etag = f'W/"{digest}"'
        headers = {"ETag": etag, "Cache-Control": "private, max-age=60, s-maxage=60", **(headers or {})}
        if request.headers.get("if-none-match") == etag:
            # GitHub's 304 carries no Link header: a client must remember the pages itself.
            return Response(304, None, {k: v for k, v in headers.items() if k != "Link"})
        return Response(200, body, headers)

    def _repo_or_none(self, full_name: str) -> FakeRepo | None:
        return self.repos.get(full_name)

    # --- JSON shapes -------------------------------------------------------------------

    def _user(self, login: str) -> dict[str, Any]:
        return {
            "login": login,
            "id": 1,
            "node_id": "MDQ6VXNlcjE=",
            "avatar_url": f"{self.url}/avatars/u/1",
            "gravatar_id": "",
            "url": f"{self.api_url}/users/{login}",
            "html_url": f"{self.url}/{login}",
            "followers_url": f"{self.api_url}/users/{login}/followers",
            "following_url": f"{self.api_url}/users/{login}/following{{/other_user}}",
            "gists_url": f"{self.api_url}/users/{login}/gists{{/gist_id}}",
            "starred_url": f"{self.api_url}/users/{login}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{self.api_url}/users/{login}/subscriptions",
            "organizations_url": f"{self.api_url}/users/{login}/orgs",
            "repos_url": f"{self.api_url}/users/{login}/repos",
            "events_url": f"{self.api_url}/users/{login}/events{{/privacy}}",
            "received_events_url": f"{self.api_url}/users/{login}/received_events",
            "type": "User",
            "user_view_type": "public",
            "site_admin": False,
        }

    def _repo_json(self, repo: FakeRepo) -> dict[str, Any]:
        """A full repository as GET /repos/{owner}/{repo} answers it (every field GitHub's schema requires)."""
        owner, name = repo.full_name.split("/")
        api = f"{self.api_url}/repos/{repo.full_name}"
        templated = {
            "archive_url": "/{archive_format}{/ref}",
            "assignees_url": "/assignees{/user}",
            "blobs_url": "/git/blobs{/sha}",
            "branches_url": "/branches{/branch}",
            "collaborators_url": "/collaborators{/collaborator}",
            "comments_url": "/comments{/number}",
            "commits_url": "/commits{/sha}",
            "compare_url": "/compare/{base}...{head}",
            "contents_url": "/contents/{+path}",
            "contributors_url": "/contributors",
            "deployments_url": "/deployments",
            "downloads_url": "/downloads",
            "events_url": "/events",
            "forks_url": "/forks",
            "git_commits_url": "/git/commits{/sha}",
            "git_refs_url": "/git/refs{/sha}",
            "git_tags_url": "/git/tags{/sha}",
            "hooks_url": "/hooks",
            "issue_comment_url": "/issues/comments{/number}",
            "issue_events_url": "/issues/events{/number}",
            "issues_url": "/issues{/number}",
            "keys_url": "/keys{/key_id}",
            "labels_url": "/labels{/name}",
            "languages_url": "/languages",
            "merges_url": "/merges",
            "milestones_url": "/milestones{/number}",
            "notifications_url": "/notifications{?since,all,participating}",
            "pulls_url": "/pulls{/number}",
            "releases_url": "/releases{/id}",
            "stargazers_url": "/stargazers",
            "statuses_url": "/statuses/{sha}",
            "subscribers_url": "/subscribers",
            "subscription_url": "/subscription",
            "tags_url": "/tags",
            "teams_url": "/teams",
            "trees_url": "/git/trees{/sha}",
        }
        host = self.url.split("://", 1)[1]
        created = "2026-01-01T00:00:00Z"
        return {
            "id": repo.id,
            "node_id": f"R_{repo.id}",
            "name": name,
            "full_name": repo.full_name,
            "private": True,
            "owner": self._user(owner),
            "html_url": f"{self.url}/{repo.full_name}",
            "description": None,
            "fork": False,
            "url": api,
            **{key: api + suffix for key, suffix in templated.items()},
            "git_url": f"git://{host}/{repo.full_name}.git",
            "ssh_url": f"git@{host}:{repo.full_name}.git",
            "clone_url": f"{self.url}/{repo.full_name}.git",
            "svn_url": f"{self.url}/{repo.full_name}",
            "mirror_url": None,
            "homepage": None,
            "language": "Python",
            "license": None,
            "size": 100,
            "forks": 0,
            "forks_count": 0,
            "stargazers_count": 0,
            "watchers": 0,
            "watchers_count": 0,
            "open_issues": 0,
            "open_issues_count": 0,
            "network_count": 0,
            "subscribers_count": 1,
            "has_issues": True,
            "has_projects": False,
            "has_wiki": False,
            "has_pages": False,
            "has_discussions": False,
            "archived": False,
            "disabled": False,
            "visibility": "private",
            "default_branch": repo.default_branch,
            "pushed_at": created,
            "created_at": created,
            "updated_at": created,
        }

    def _commit_json(self, repo: FakeRepo, commit: FakeCommit) -> dict[str, Any]:
        api = f"{self.api_url}/repos/{repo.full_name}"
        person = {"name": commit.author, "email": commit.email, "date": commit.date.strftime("%Y-%m-%dT%H:%M:%SZ")}
        return {
            "sha": commit.sha,
            "node_id": f"C_{commit.sha[:12]}",
            "commit": {
                "author": person,
                "committer": person,
                "message": commit.message,
                "tree": {"sha": commit.sha[::-1], "url": f"{api}/git/trees/{commit.sha[::-1]}"},
                "url": f"{api}/git/commits/{commit.sha}",
                "comment_count": 0,
                "verification": {
                    "verified": False,
                    "reason": "unsigned",
                    "signature": None,
                    "payload": None,
                    "verified_at": None,
                },
            },
            "url": f"{api}/commits/{commit.sha}",
            "html_url": f"{self.url}/{repo.full_name}/commit/{commit.sha}",
            "comments_url": f"{api}/commits/{commit.sha}/comments",
            "author": self._user(commit.author.split()[0].lower()),
            "committer": self._user(commit.author.split()[0].lower()),
            "parents": [
                {"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{self.url}/{repo.full_name}/commit/{p}"}
                for p in commit.parents
            ],
        }

    # --- handlers -------------------------------------------------------------------------

    def _rate_limit_answer(self, request: Request) -> Response:
        core = {
            "limit": self.rate_limit,
            "used": self.rate_limit - self.rate_remaining,
            "remaining": self.rate_remaining,
            "reset": self.rate_reset,
        }
        spare = {"limit": 30, "used": 0, "remaining": 30, "reset": self.rate_reset}
        return Response(200, {"resources": {"core": core, "search": spare}, "rate": core})

    def _repo(self, request: Request, full_name: str) -> Response:
        repo = self._repo_or_none(full_name)
        return self._conditional(request, self._repo_json(repo)) if repo else self.not_found(request)

    def _branches_by_name(self, request: Request, full_name: str) -> Response:
        repo = self._repo_or_none(full_name)
        return self._branch_page(request, repo) if repo else self.not_found(request)

    def _branches_by_id(self, request: Request, repo_id: str) -> Response:
        repo = self._repo_by_id(repo_id)
        return self._branch_page(request, repo) if repo else self.not_found(request)

    def _branch_page(self, request: Request, repo: FakeRepo) -> Response:
        per_page = min(int(request.query.get("per_page", 30)), 100)
        page = max(int(request.query.get("page", 1)), 1)
        with self.data_lock:
            names = sorted(repo.branches)
            items = [
                {
                    "name": name,
                    "commit": {
                        "sha": repo.branches[name],
                        "url": f"{self.api_url}/repos/{repo.full_name}/commits/{repo.branches[name]}",
                    },
                    "protected": name == repo.default_branch,
                }
                for name in names[(page - 1) * per_page : page * per_page]
            ]
        last = max((len(names) + per_page - 1) // per_page, 1)
        return self._conditional(request, items, self._links(repo, per_page, page, last))

    def _tags_by_name(self, request: Request, full_name: str) -> Response:
        repo = self._repo_or_none(full_name)
        return self._tag_page(request, repo) if repo else self.not_found(request)

    def _tags_by_id(self, request: Request, repo_id: str) -> Response:
        repo = self._repo_by_id(repo_id)
        return self._tag_page(request, repo) if repo else self.not_found(request)

    def _tag_page(self, request: Request, repo: FakeRepo) -> Response:
        """GitHub lists tags newest first by name (as `git tag --sort=-v:refname` would), 30 a page."""
        api = f"{self.api_url}/repos/{repo.full_name}"
        with self.data_lock:
            names = sorted(repo.tags, reverse=True)
            items = [
                {
                    "name": name,
                    "commit": {"sha": repo.tags[name], "url": f"{api}/commits/{repo.tags[name]}"},
                    "zipball_url": f"{api}/zipball/refs/tags/{name}",
                    "tarball_url": f"{api}/tarball/refs/tags/{name}",
                    "node_id": f"REF_{repo.id}_{name}",
                }
                for name in names
            ]
        return self._paged(request, repo, items, "tags")

    def _links(
        self, repo: FakeRepo, per_page: int, page: int, last: int, what: str = "branches", **query: str
    ) -> dict[str, str]:
        """GitHub's `Link` header: URLs through /repositories/<id>/..., keeping the request's filters."""

        def link(number: int, rel: str) -> str:
            params = urlencode({**query, "per_page": per_page, "page": number})
            return f'<{self.api_url}/repositories/{repo.id}/{what}?{params}>; rel="{rel}"'

        rels = []
        if page > 1:
            rels += [link(page - 1, "prev"), link(1, "first")]
        if page < last:
            rels += [link(page + 1, "next"), link(last, "last")]
        return {"Link": ", ".join(rels)} if rels else {}

    def _paged(self, request: Request, repo: FakeRepo, items: list[Any], what: str, **query: str) -> Response:
        """One page of `items` as GitHub lists them (per_page 30 by default, at most 100), with `Link`."""
        per_page = min(max(int(request.query.get("per_page", 30)), 1), 100)
        page = max(int(request.query.get("page", 1)), 1)
        last = max((len(items) + per_page - 1) // per_page, 1)
        shown = items[(page - 1) * per_page : page * per_page]
        return self._conditional(request, shown, self._links(repo, per_page, page, last, what, **query))

    def _repo_by_id(self, repo_id: str) -> FakeRepo | None:
        return next((r for r in self.repos.values() if r.id == int(repo_id)), None)

    def _branch(self, request: Request, full_name: str, name: str) -> Response:
        repo = self._repo_or_none(full_name)
        if repo is None or name not in repo.branches:
            return Response(404, {"message": "Branch not found", "documentation_url": DOCS, "status": "404"})
        commit = repo.commits[repo.branches[name]]
        api = f"{self.api_url}/repos/{repo.full_name}"
        body = {
            "name": name,
            "commit": self._commit_json(repo, commit),
            "_links": {"self": f"{api}/branches/{name}", "html": f"{self.url}/{repo.full_name}/tree/{name}"},
            "protected": name == repo.default_branch,
            "protection": {
                "enabled": name == repo.default_branch,
                "required_status_checks": {"enforcement_level": "off", "contexts": [], "checks": []},
            },
            "protection_url": f"{api}/branches/{name}/protection",
        }
        return self._conditional(request, body)

    def _commit(self, request: Request, full_name: str, sha: str) -> Response:
        repo = self._repo_or_none(full_name)
        if repo is None or sha not in repo.commits:
            body = {"message": f"No commit found for SHA: {sha}", "documentation_url": DOCS, "status": "422"}
            return Response(422, body)
        return self._conditional(request, {**self._commit_json(repo, repo.commits[sha]), "stats": {}, "files": []})

    def _deployments(self, request: Request, full_name: str) -> Response:
        repo = self._repo_or_none(full_name)
        if repo is None:
            return self.not_found(request)
        filters = {key: request.query[key] for key in ("sha", "ref", "environment", "task") if key in request.query}
        with self.data_lock:
            found = [d for d in reversed(repo.deployments) if all(d[key] == value for key, value in filters.items())]
        return self._paged(request, repo, found, "deployments", **filters)

    def _deployments_by_id(self, request: Request, repo_id: str) -> Response:
        repo = self._repo_by_id(repo_id)
        return self._deployments(request, repo.full_name) if repo else self.not_found(request)

    def _deployment(self, request: Request, full_name: str, deployment_id: str) -> Response:
        repo = self._repo_or_none(full_name)
        found = [d for d in repo.deployments if d["id"] == int(deployment_id)] if repo else []
        return self._conditional(request, found[0]) if found else self.not_found(request)

    def _deployment_json(self, repo: FakeRepo, ref: str, environment: str, payload: Any, creator: str) -> dict:
        deployment_id = next(self._ids)
        api = f"{self.api_url}/repos/{repo.full_name}"
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "url": f"{api}/deployments/{deployment_id}",
            "id": deployment_id,
            "node_id": f"DE_{deployment_id}",
            "sha": repo.branches.get(ref, ref),
            "ref": ref,
            "task": "deploy",
            "payload": payload,
            "original_environment": environment,
            "environment": environment,
            "description": None,
            "creator": self._user(creator),
            "created_at": now,
            "updated_at": now,
            "statuses_url": f"{api}/deployments/{deployment_id}/statuses",
            "repository_url": api,
            "transient_environment": False,
            "production_environment": False,
            "performed_via_github_app": None,
        }

    def _deployment_create(self, request: Request, full_name: str) -> Response:
        repo = self._repo_or_none(full_name)
        if repo is None:
            return self.not_found(request)
        data = request.json()
        sha = data.get("ref", "")
        if sha not in repo.commits and sha not in repo.branches:
            return Response(422, {"message": f"No ref found for: {sha}", "documentation_url": DOCS, "status": "422"})
        if data.get("required_contexts") is None or data.get("auto_merge") is not False:
            # Real GitHub would merge the default branch in or wait for status checks: Gantry must not ask for that.
            return Response(409, {"message": "Conflict: Gantry must send auto_merge=false and required_contexts"})
        environment = data.get("environment", "production")
        deployment = self._deployment_json(repo, sha, environment, data.get("payload", {}), "gantry-bot")
        deployment.update(
            task=data.get("task", "deploy"),
            description=data.get("description"),
            transient_environment=data.get("transient_environment", False),
            production_environment=data.get("production_environment", environment == "production"),
        )
        with self.data_lock:
            repo.deployments.append(deployment)
            repo.statuses[deployment["id"]] = []
        return Response(201, deployment, {"Location": deployment["url"]})

    def _statuses(self, request: Request, full_name: str, deployment_id: str) -> Response:
        repo = self._repo_or_none(full_name)
        if repo is None or int(deployment_id) not in repo.statuses:
            return self.not_found(request)
        with self.data_lock:
            found = list(reversed(repo.statuses[int(deployment_id)]))
        return self._paged(request, repo, found, f"deployments/{int(deployment_id)}/statuses")

    def _statuses_by_id(self, request: Request, repo_id: str, deployment_id: str) -> Response:
        repo = self._repo_by_id(repo_id)
        return self._statuses(request, repo.full_name, deployment_id) if repo else self.not_found(request)

    def _status_create(self, request: Request, full_name: str, deployment_id: str) -> Response:
        repo = self._repo_or_none(full_name)
        if repo is None or int(deployment_id) not in repo.statuses:
            return self.not_found(request)
        data = request.json()
        states = {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}
        if data.get("state") not in states:
            return Response(422, {"message": "Validation Failed", "errors": [{"field": "state", "code": "invalid"}]})
        api = f"{self.api_url}/repos/{repo.full_name}"
        status_id = next(self._ids)
        status = {
            "url": f"{api}/deployments/{deployment_id}/statuses/{status_id}",
            "id": status_id,
            "node_id": f"DES_{status_id}",
            "state": data["state"],
            "creator": self._user("gantry-bot"),
            "description": data.get("description", ""),
            "environment": data.get("environment", ""),
            "target_url": data.get("target_url", ""),
            "log_url": data.get("log_url", data.get("target_url", "")),
            "environment_url": data.get("environment_url", ""),
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "updated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "deployment_url": f"{api}/deployments/{deployment_id}",
            "repository_url": api,
            "performed_via_github_app": None,
        }
        with self.data_lock:
            repo.statuses[int(deployment_id)].append(status)
        return Response(201, status)


# --- webhooks, as GitHub sends them ---------------------------------------------------


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _repository(github: FakeGitHub, repo: FakeRepo) -> dict[str, Any]:
    return {**github._repo_json(repo), "pushed_at": int(time.time())}


def push_event(github: FakeGitHub, full_name: str, branch: str, before: str, *, deleted: bool = False) -> dict:
    """The body of a `push` event for the current head of `branch` (or its deletion)."""
    repo = github.repos[full_name]
    after = ZERO_SHA if deleted else repo.branches[branch]
    head = None
    if not deleted:
        commit = repo.commits[after]
        who = {"name": commit.author, "email": commit.email, "username": commit.author.split()[0].lower()}
        head = {
            "id": after,
            "tree_id": after[::-1],
            "distinct": True,
            "message": commit.message,
            "timestamp": commit.date.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
            "url": f"{github.url}/{full_name}/commit/{after}",
            "author": who,
            "committer": who,
            "added": [],
            "removed": [],
            "modified": ["README.md"],
        }
    return {
        "ref": f"refs/heads/{branch}",
        "before": before,
        "after": after,
        "created": before == ZERO_SHA,
        "deleted": deleted,
        "forced": False,
        "base_ref": None,
        "compare": f"{github.url}/{full_name}/compare/{before[:12]}...{after[:12]}",
        "commits": [head] if head else [],
        "head_commit": head,
        "repository": _repository(github, repo),
        "pusher": {"name": "ada", "email": "ada@example.com"},
        "sender": github._user("ada"),
    }


def ref_event(github: FakeGitHub, full_name: str, ref: str, *, ref_type: str = "branch") -> dict:
    """The body of a `create` or `delete` event."""
    repo = github.repos[full_name]
    return {
        "ref": ref,
        "ref_type": ref_type,
        "master_branch": repo.default_branch,
        "description": None,
        "pusher_type": "user",
        "repository": _repository(github, repo),
        "sender": github._user("ada"),
    }
