"""The shape of post-deploy API test suites (in the catalog under a service's `api_tests:`).

    api_tests:
      smoke:
        variables: {version_url: "{{base_url}}/version"}
        steps:
          - name: version
            url: "{{version_url}}"
            extract: {sha: json.sha}
            assert:
              - status: 200
              - json: sha
                equals: "{{sha}}"
              - header: Content-Type
                matches: ^application/json
              - response_time_ms: 500

Each assertion names one subject (status, json, header or response_time_ms)
and, for json and header, one check (equals, contains, exists, type, matches).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

import regex
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TEMPLATE_RE = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")
VARIABLE_RE = re.compile(r"[A-Za-z_]\w*")
MAX_PATTERN = 1000
JSON_TYPES = ("string", "number", "integer", "boolean", "object", "array", "null")
CHECKS = ("equals", "contains", "exists", "type", "matches")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)


class AssertionSpec(_Spec):
    status: int | None = Field(default=None, ge=100, le=599, description="the HTTP status, e.g. 200")
    json_path: str | None = Field(default=None, alias="json", description="a path into the JSON body: a.b.0.c")
    header: str | None = Field(default=None, description="a response header, e.g. Content-Type")
    response_time_ms: int | None = Field(default=None, ge=1, description="the answer must come faster than this")
    equals: Any = Field(default=None, description="the value must equal this")
    contains: str | None = Field(default=None, description="the value must contain this text")
    exists: bool | None = Field(default=None, description="the path must exist (true) or not (false)")
    type: Literal["string", "number", "integer", "boolean", "object", "array", "null"] | None = None
    matches: str | None = Field(default=None, description="a regular expression the value must match")

    @field_validator("matches")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            if len(value) > MAX_PATTERN:
                raise ValueError(f"is {len(value)} characters long; a pattern may have at most {MAX_PATTERN}")
            try:
                regex.compile(value)
            except regex.error as exc:
                raise ValueError(f"is not a valid regular expression ({exc})") from exc
        return value

    @model_validator(mode="after")
    def _one_subject_one_check(self) -> AssertionSpec:
        subjects = [n for n in ("status", "json_path", "header", "response_time_ms") if getattr(self, n) is not None]
        checks = [n for n in CHECKS if n in self.model_fields_set]
        if len(subjects) != 1:
            raise ValueError("name exactly one of status, json, header or response_time_ms in each assertion")
        if subjects[0] in {"status", "response_time_ms"} and checks:
            raise ValueError(f"{subjects[0]} takes its value directly (status: 200), without {checks[0]}")
        if subjects[0] in {"json_path", "header"} and len(checks) != 1:
            raise ValueError(f"a json or header assertion needs exactly one of {', '.join(CHECKS)}")
        return self


class StepSpec(_Spec):
    name: str = Field(min_length=1, max_length=100, description="what the step checks")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: str = Field(min_length=1, description='the URL, e.g. "{{base_url}}/healthz"')
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = Field(default=None, description="a text body")
    json_body: Any = Field(default=None, alias="json", description="a JSON body")
    timeout: float = Field(default=10, gt=0, le=120, description="seconds the whole exchange may take")
    follow_redirects: bool = Field(
        default=False, description="follow redirects (at most 5), each to an origin the environment allows"
    )
    extract: dict[str, str] = Field(
        default_factory=dict, description="variables for later steps: name: json.<path> | header.<name> | status"
    )
    assertions: list[AssertionSpec] = Field(default_factory=list, alias="assert")

    @field_validator("extract")
    @classmethod
    def _sources(cls, value: dict[str, str]) -> dict[str, str]:
        for name, source in value.items():
            if not VARIABLE_RE.fullmatch(name):
                raise ValueError(f"{name!r} is not a variable name (letters, digits, _)")
            if not (source == "status" or source.startswith(("json.", "header.")) or source == "json"):
                raise ValueError(f"{name}: {source!r} must be json.<path>, header.<name> or status")
        return value


class SuiteSpec(_Spec):
    variables: dict[str, str] = Field(default_factory=dict, description="suite variables; may use each other")
    per_host: bool = Field(default=False, description="also run against each host (host_base_url)")
    steps: list[StepSpec] = Field(min_length=1, max_length=100, description="the HTTP steps, in order")

    @field_validator("variables")
    @classmethod
    def _variable_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not VARIABLE_RE.fullmatch(name):
                raise ValueError(f"{name!r} is not a variable name (letters, digits, _; not starting with a digit)")
        return value

    @model_validator(mode="after")
    def _no_cycles(self) -> SuiteSpec:
        variables_order(self.variables)
        return self


def names_used(suite: SuiteSpec) -> set[str]:
    """Every {{name}} the suite's templates mention (its own variables included)."""
    used: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            used.update(TEMPLATE_RE.findall(value))
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(key)
                walk(item)

    walk(suite.model_dump())
    return used


SECRET_PREFIX = "secret."


def secrets_named(names: Iterable[str]) -> set[str]:
    """The secrets (NAME of {{secret.NAME}}) among template names."""
    return {name.removeprefix(SECRET_PREFIX) for name in names if name.startswith(SECRET_PREFIX)}


def variables_order(variables: dict[str, str]) -> list[str]:
    """The variables in an order where each comes after those it uses; ValueError naming a cycle."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = " → ".join([*path[path.index(name) :], name])
            raise ValueError(f"the variables use each other in a cycle: {cycle}; break it")
        state[name] = "visiting"
        for used in TEMPLATE_RE.findall(variables[name]):
            if used in variables:
                visit(used, [*path, name])
        state[name] = "done"
        order.append(name)

    for name in variables:
        visit(name, [])
    return order
