"""The fake GitHub answers as GitHub's own OpenAPI description says (tests/fakes/github_openapi, a subset of
@octokit/openapi): every answer Gantry can get from it validates against the vendor's schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft7Validator

from tests.fakes.github import FakeGitHub

pytestmark = pytest.mark.one_backend  # the database backend makes no difference here

SCHEMA_FILE = Path(__file__).parents[1] / "fakes" / "github_openapi" / "schemas.json"
SCHEMAS = json.loads(SCHEMA_FILE.read_text())["operations"]


def answer(github: FakeGitHub, method: str, path: str, body: dict | None = None, *, token: str = "") -> Any:
    response = requests.request(
        method, github.api_url + path, json=body, headers={"Authorization": f"token {token or github.token}"}, timeout=5
    )
    assert response.status_code in (200, 201), (path, response.status_code, response.text)
    return response.json()


def problems(operation: str, data: Any) -> list[str]:
    validator = Draft7Validator(SCHEMAS[operation]["schema"])
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(data)]


@pytest.fixture
def world(github: FakeGitHub) -> dict[str, Any]:
    repo = github.add_repo("acme/app", branches=3)
    sha = repo.branches["main"]
    github.add_tag("acme/app", "v1.0.0", sha)
    run = github.add_run("acme/app", sha)
    github.add_artifact("acme/app", run, "release", {"release.tar.gz": b"tar"})
    github.add_artifact("acme/app", run, "old", {"x": b"y"}, digest=None)
    github.add_run("acme/app", sha, status="in_progress", conclusion=None)
    github.checks.add_check_run("acme/app", sha, "test")
    github.checks.add_check_run("acme/app", sha, "lint", status="in_progress", conclusion=None)
    github.checks.add_status("acme/app", sha, "ci/circleci", "success", creator="circleci")
    github.checks.protect("acme/app", "main", [("test", 15368), ("ci/circleci", None)])
    deployment = answer(
        github,
        "POST",
        "/repos/acme/app/deployments",
        {"ref": sha, "environment": "test", "auto_merge": False, "required_contexts": [], "payload": {"x": 1}},
    )
    github.add_foreign_deployment("acme/app", sha=sha, environment="production", payload="deployed by a script")
    status = answer(github, "POST", f"/repos/acme/app/deployments/{deployment['id']}/statuses", {"state": "success"})
    return {"sha": sha, "deployment": deployment, "status": status, "run": run}


def test_every_answer_of_the_fake_validates_against_githubs_schema(github: FakeGitHub, world: dict) -> None:
    sha, deployment_id = world["sha"], world["deployment"]["id"]
    statuses = f"/repos/acme/app/deployments/{deployment_id}/statuses"
    answers = {
        "repos/get": answer(github, "GET", "/repos/acme/app"),
        "repos/list-branches": answer(github, "GET", "/repos/acme/app/branches?per_page=100"),
        "repos/get-branch": answer(github, "GET", "/repos/acme/app/branches/main"),
        "repos/list-tags": answer(github, "GET", "/repos/acme/app/tags"),
        "actions/list-workflow-runs-for-repo": answer(github, "GET", "/repos/acme/app/actions/runs?per_page=100"),
        "actions/list-workflow-run-artifacts": answer(
            github, "GET", f"/repos/acme/app/actions/runs/{world['run']['id']}/artifacts"
        ),
        "repos/get-commit": answer(github, "GET", f"/repos/acme/app/commits/{sha}"),
        "checks/list-for-ref": answer(github, "GET", f"/repos/acme/app/commits/{sha}/check-runs"),
        "repos/list-commit-statuses-for-ref": answer(github, "GET", f"/repos/acme/app/commits/{sha}/statuses"),
        "repos/get-status-checks-protection": answer(
            github, "GET", "/repos/acme/app/branches/main/protection/required_status_checks"
        ),
        "repos/list-deployments": answer(github, "GET", "/repos/acme/app/deployments"),
        "repos/get-deployment": answer(github, "GET", f"/repos/acme/app/deployments/{deployment_id}"),
        "repos/create-deployment": world["deployment"],
        "repos/list-deployment-statuses": answer(github, "GET", statuses),
        "repos/create-deployment-status": world["status"],
        "rate-limit/get": answer(github, "GET", "/rate_limit"),
        **person_answers(github),
    }
    assert set(answers) == set(SCHEMAS), "every operation in the subset is checked"
    found = {operation: problems(operation, data) for operation, data in answers.items()}
    assert found == {operation: [] for operation in answers}
    assert len(answers["repos/list-deployments"]) == 2, "Gantry's deployment and another tool's"


def person_answers(github: FakeGitHub) -> dict[str, Any]:
    """What a person's own token reads (signing in with GitHub)."""
    github.people.add_person("ada", "ada@example.com", teams=["web-deployers"])
    github.people.tokens["gho_person"] = "ada"
    return {
        "users/get-authenticated": answer(github, "GET", "/user", token="gho_person"),
        "users/list-emails-for-authenticated-user": answer(github, "GET", "/user/emails", token="gho_person"),
        "teams/list-for-authenticated-user": answer(github, "GET", "/user/teams", token="gho_person"),
        "orgs/get-membership-for-authenticated-user": answer(
            github, "GET", "/user/memberships/orgs/acme", token="gho_person"
        ),
    }
