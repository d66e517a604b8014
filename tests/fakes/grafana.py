"""A test-only fake of Grafana's annotations HTTP API (POST /api/annotations, PATCH and GET), answering in
Grafana's shapes. Every request body and every answer it gives is checked against Grafana's own published
OpenAPI description (grafana_openapi/annotations.json, an excerpt of public/api-merged.json): a field Gantry
sends that Grafana does not take, or an answer Grafana would not give, fails the test that caused it.

Without `Authorization: Bearer <token>` it answers 401 like Grafana; `fail()` (FakeServer) makes it answer
5xx or hang, as a Grafana that is down or slow does."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import jsonschema

from tests.fakes.server import FakeServer, Request, Response

SPEC = json.loads((Path(__file__).parent / "grafana_openapi" / "annotations.json").read_text())


def _schema(ref: str) -> dict[str, Any]:
    return {"$ref": ref, "definitions": SPEC["definitions"]}


def _check(instance: Any, ref: str) -> None:
    jsonschema.validate(instance, _schema(ref), cls=jsonschema.Draft4Validator)


def _check_answer(operation: dict[str, Any], status: int, body: Any) -> None:
    response = operation["responses"][str(status)]
    if "$ref" in response:
        response = SPEC["responses"][response["$ref"].rsplit("/", 1)[-1]]
    jsonschema.validate(
        body, {**response["schema"], "definitions": SPEC["definitions"]}, cls=jsonschema.Draft4Validator
    )


class FakeGrafana(FakeServer):
    token = "glsa_fake_service_account_token"

    def __init__(self) -> None:
        super().__init__()
        self.annotations: dict[int, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self.route("POST", r"/api/annotations", self._create)
        self.route("PATCH", r"/api/annotations/(\d+)", self._patch)
        self.route("GET", r"/api/annotations", self._find)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.faults.clear()
        self.annotations = {}

    def _authorised(self, request: Request) -> bool:
        return request.headers.get("authorization", "") == f"Bearer {self.token}"

    def _answer(self, path: str, method: str, status: int, body: dict[str, Any]) -> Response:
        _check_answer(SPEC["paths"][path][method], status, body)
        return Response(status, body)

    def _create(self, request: Request) -> Response:
        if not self._authorised(request):
            return self._answer("/annotations", "post", 401, {"message": "Unauthorized"})
        body = request.json()
        _check(body, "#/definitions/PostAnnotationsCmd")
        if not body.get("text"):  # Grafana: "Failed to save annotation" when text is empty
            return self._answer("/annotations", "post", 400, {"message": "Failed to save annotation"})
        annotation_id = next(self._ids)
        self.annotations[annotation_id] = {"id": annotation_id, **body, "patches": 0}
        return self._answer("/annotations", "post", 200, {"message": "Annotation added", "id": annotation_id})

    def _patch(self, request: Request, annotation_id: str) -> Response:
        path = "/annotations/{annotation_id}"
        if not self._authorised(request):
            return self._answer(path, "patch", 401, {"message": "Unauthorized"})
        body = request.json()
        _check(body, "#/definitions/PatchAnnotationsCmd")
        found = self.annotations.get(int(annotation_id))
        if found is None:
            return self._answer(path, "patch", 404, {"message": "Could not find annotation to update"})
        found.update(body)
        found["patches"] += 1
        return self._answer(path, "patch", 200, {"message": "Annotation patched"})

    def _find(self, request: Request) -> Response:
        return Response(200, list(self.annotations.values()))

    def with_tag(self, tag: str) -> list[dict[str, Any]]:
        return [a for a in self.annotations.values() if tag in a.get("tags", [])]
