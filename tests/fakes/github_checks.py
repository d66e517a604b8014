"""The fake GitHub's check runs, commit statuses and branch protection (what deployer/sources/checks.py reads),
shaped as GitHub's OpenAPI description says (tests/house/test_github_fake_schema.py)."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from tests.fakes.server import Request, Response

if TYPE_CHECKING:
    from tests.fakes.github import FakeGitHub

GITHUB_ACTIONS_APP_ID = 15368  # GitHub Actions' app id on github.com
WHEN = "2026-12-01T10:00:00Z"


class GitHubChecks:
    def __init__(self, github: FakeGitHub) -> None:
        self.github = github
        self.check_runs: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (repo, sha) → runs, oldest first
        self.statuses: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (repo, sha) → statuses, oldest first
        self.protection: dict[tuple[str, str], dict[str, Any]] = {}  # (repo, branch) → required status checks
        self.protection_refused = False  # the token may not read the repository's administration
        self._ids = itertools.count(9_000_000)
        self._seconds = itertools.count(1)
        api, repo = "/api/v3", r"/repos/([^/]+/[^/]+)"
        github.route("GET", api + repo + "/commits/([^/]+)/check-runs", self._check_runs)
        github.route("GET", api + repo + "/commits/([^/]+)/statuses", self._statuses)
        github.route("GET", api + repo + "/branches/(.+)/protection/required_status_checks", self._protection)

    # --- arranging the world ---------------------------------------------------

    def reset(self) -> None:
        for known in (self.check_runs, self.statuses, self.protection):
            known.clear()
        self.protection_refused = False

    def add_check_run(
        self,
        full_name: str,
        sha: str,
        name: str,
        *,
        run: dict[str, Any] | None = None,
        app: str = "github-actions",
        app_id: int = GITHUB_ACTIONS_APP_ID,
        status: str = "completed",
        conclusion: str | None = "success",
    ) -> dict[str, Any]:
        """A check run on `sha` posted by the GitHub App `app` (newer than every earlier one): a job of the
        workflow run `run` (its check suite), or of a suite of its own."""
        run_id, at = next(self._ids), self._moment()
        api = f"{self.github.api_url}/repos/{full_name}/check-runs/{run_id}"
        run = {
            "id": run_id,
            "node_id": f"CR_{run_id}",
            "head_sha": sha,
            "name": name,
            "external_id": "",
            "url": api,
            "html_url": f"{self.github.url}/{full_name}/runs/{run_id}",
            "details_url": f"{self.github.url}/{full_name}/runs/{run_id}",
            "status": status,
            "conclusion": conclusion if status == "completed" else None,
            "started_at": at,
            "completed_at": at if status == "completed" else None,
            "output": {
                "title": None,
                "summary": None,
                "text": None,
                "annotations_count": 0,
                "annotations_url": f"{api}/annotations",
            },
            "check_suite": {"id": run["check_suite_id"] if run else run_id + 1},
            "app": self._app(app, app_id),
            "pull_requests": [],
        }
        with self.github.data_lock:
            self.check_runs.setdefault((full_name, sha), []).append(run)
        return run

    def add_status(self, full_name: str, sha: str, context: str, state: str, *, creator: str) -> dict[str, Any]:
        """A commit status on `sha` under `context`, posted by the account `creator` (newer than the others)."""
        status_id, at = next(self._ids), self._moment()
        status = {
            "url": f"{self.github.api_url}/repos/{full_name}/statuses/{sha}",
            "avatar_url": f"{self.github.url}/avatars/u/1",
            "id": status_id,
            "node_id": f"SC_{status_id}",
            "state": state,
            "description": f"{context}: {state}",
            "target_url": f"{self.github.url}/ci/{status_id}",
            "context": context,
            "created_at": at,
            "updated_at": at,
            "creator": self.github._user(creator),
        }
        with self.github.data_lock:
            self.statuses.setdefault((full_name, sha), []).append(status)
        return status

    def protect(self, full_name: str, branch: str, checks: list[tuple[str, int | None]]) -> None:
        """`branch` requires these checks (context, app id or None for any app), as branch protection sets it."""
        with self.github.data_lock:
            self.protection[(full_name, branch)] = {"checks": [{"context": c, "app_id": a} for c, a in checks]}

    # --- answers -----------------------------------------------------------------

    def _check_runs(self, request: Request, full_name: str, ref: str) -> Response:
        """Newest first; filter=latest (the default) keeps the newest run per name and app."""
        if self.github._repo_or_none(full_name) is None:
            return self.github.not_found(request)
        with self.github.data_lock:
            runs = list(reversed(self.check_runs.get((full_name, ref), [])))
        latest: dict[tuple[str, int], dict[str, Any]] = {}
        for run in runs:
            latest.setdefault((run["name"], run["app"]["id"]), run)
        shown = runs if request.query.get("filter") == "all" else list(latest.values())
        return self.github._conditional(request, {"total_count": len(shown), "check_runs": shown[:100]})

    def _statuses(self, request: Request, full_name: str, ref: str) -> Response:
        if self.github._repo_or_none(full_name) is None:
            return self.github.not_found(request)
        with self.github.data_lock:
            found = list(reversed(self.statuses.get((full_name, ref), [])))
        return self.github._conditional(request, found[:100])

    def _protection(self, request: Request, full_name: str, branch: str) -> Response:
        if self.github._repo_or_none(full_name) is None:
            return self.github.not_found(request)
        if self.protection_refused:
            docs = "https://docs.github.com/rest/branches/branch-protection#get-status-checks-protection"
            return Response(403, {"message": "Resource not accessible by integration", "documentation_url": docs})
        with self.github.data_lock:
            rule = self.protection.get((full_name, branch))
        if rule is None:
            return Response(404, {"message": "Branch not protected", "documentation_url": "", "status": "404"})
        api = f"{self.github.api_url}/repos/{full_name}/branches/{branch}/protection/required_status_checks"
        body = {
            "url": api,
            "strict": False,
            "contexts": [check["context"] for check in rule["checks"]],
            "contexts_url": f"{api}/contexts",
            "checks": rule["checks"],
        }
        return self.github._conditional(request, body)

    # --- JSON shapes -------------------------------------------------------------------

    def _app(self, slug: str, app_id: int) -> dict[str, Any]:
        return {
            "id": app_id,
            "slug": slug,
            "node_id": f"MDM6QXBw{app_id}",
            "owner": self.github._user("github"),
            "name": slug.replace("-", " ").title(),
            "description": "",
            "external_url": f"{self.github.url}/apps/{slug}",
            "html_url": f"{self.github.url}/apps/{slug}",
            "created_at": WHEN,
            "updated_at": WHEN,
            "permissions": {"checks": "write", "metadata": "read"},
            "events": ["check_run"],
        }

    def _moment(self) -> str:
        """Each new entry a second later than the last (GitHub orders by time)."""
        second = next(self._seconds)
        return f"2026-12-01T{10 + second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"
