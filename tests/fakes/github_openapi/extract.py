"""Regenerate schemas.json: the answers' JSON schemas of the GitHub REST operations the fake GitHub serves,
from the @octokit/openapi npm package (GitHub's own OpenAPI description, MIT licence: LICENSE here).

Run: npm pack @octokit/openapi@23.0.2 && tar xzf octokit-openapi-23.0.2.tgz &&
     python tests/fakes/github_openapi/extract.py package/generated/api.github.com.deref.json

OpenAPI 3.0's `nullable: true` becomes a JSON Schema type list (so jsonschema validates it as GitHub means
it); descriptions and examples are dropped to keep the file small.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OPERATIONS = {
    "repos/get": "200",
    "repos/list-branches": "200",
    "repos/get-branch": "200",
    "repos/list-tags": "200",
    "actions/list-workflow-runs-for-repo": "200",
    "actions/list-workflow-run-artifacts": "200",
    "repos/get-commit": "200",
    "checks/list-for-ref": "200",
    "repos/list-commit-statuses-for-ref": "200",
    "repos/get-status-checks-protection": "200",
    "repos/list-deployments": "200",
    "repos/get-deployment": "200",
    "repos/create-deployment": "201",
    "repos/list-deployment-statuses": "200",
    "repos/create-deployment-status": "201",
    "rate-limit/get": "200",
    "users/get-authenticated": "200",
    "users/list-emails-for-authenticated-user": "200",
    "teams/list-for-authenticated-user": "200",
    "orgs/get-membership-for-authenticated-user": "200",
}
DROPPED = {"description", "example", "examples", "externalDocs", "title"}


def plain(schema: Any) -> Any:
    """OpenAPI 3.0 schema → JSON Schema (draft 2020-12) as jsonschema reads it."""
    if isinstance(schema, list):
        return [plain(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: plain(value) for key, value in schema.items() if key not in DROPPED and key != "nullable"}
    if schema.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def main(source: str) -> None:
    spec = json.loads(Path(source).read_text())
    found = {}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and operation.get("operationId") in OPERATIONS:
                status = OPERATIONS[operation["operationId"]]
                schema = operation["responses"][status]["content"]["application/json"]["schema"]
                found[operation["operationId"]] = {
                    "method": method.upper(),
                    "path": path,
                    "status": int(status),
                    "schema": plain(schema),
                }
    info = {"source": "@octokit/openapi " + spec["info"].get("version", ""), "openapi": spec["openapi"]}
    target = Path(__file__).with_name("schemas.json")
    target.write_text(json.dumps({"info": info, "operations": found}, sort_keys=True, separators=(",", ":")))


if __name__ == "__main__":
    main(sys.argv[1])
