"""Running an API test suite: HTTP steps in order, templates filled from variables
(the environment's, the suite's, and what earlier steps extracted), every
assertion judged with what was expected and what came back.

A step that fails (no answer, a timeout, a failed assertion, a request the
environment's policy refuses) fails itself; the suite goes on, and a later step
that needs a variable it did not extract says so. Where a request may go, and
how long and how much of an answer is read: apitest_network.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import regex
import requests
from requests.structures import CaseInsensitiveDict

from deployer.apitests.network import (
    MAX_REDIRECTS,
    REDIRECT_STATUSES,
    AnswerRefused,
    RequestPolicy,
    RequestRefused,
    blocked_reason,
    body_read,
    deadline,
    guarded_session,
)
from deployer.apitests.schema import TEMPLATE_RE, AssertionSpec, StepSpec, SuiteSpec, variables_order

EXCERPT = 500
# A `matches:` pattern can come from a branch and run against an answer the same branch writes.
MATCH_TIMEOUT = 1.0


class MissingVariable(Exception):
    pass


@dataclass
class AssertionResult:
    what: str  # "status", "json sha equals", ...
    ok: bool
    expected: str
    actual: str


@dataclass
class StepResult:
    name: str
    method: str
    url: str
    ok: bool
    status: int | None = None
    elapsed_ms: int | None = None
    error: str = ""
    assertions: list[AssertionResult] = field(default_factory=list)
    response_excerpt: str = ""


@dataclass
class SuiteResult:
    suite: str
    target: str  # "environment" or a host address
    steps: list[StepResult]

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)


def render(template: str, variables: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            known = ", ".join(sorted(variables)) or "none"
            raise MissingVariable(f"unknown variable {{{{{name}}}}} (known: {known})")
        return variables[name]

    return TEMPLATE_RE.sub(value, template)


def suite_run(
    name: str, suite: SuiteSpec, variables: dict[str, str], *, policy: RequestPolicy, target: str = "environment"
) -> SuiteResult:
    """Run `suite`'s steps in order; every request must pass `policy` (where it may go)."""
    values = dict(variables)
    results = []
    try:
        for variable in variables_order(suite.variables):
            values[variable] = render(suite.variables[variable], values)
    except MissingVariable as exc:
        return SuiteResult(name, target, [StepResult("variables", "", "", False, error=str(exc))])
    session = guarded_session()
    try:
        for step in suite.steps:
            results.append(_step_run(session, step, values, policy))
    finally:
        session.close()
    return SuiteResult(name, target, results)


@dataclass
class Answer:
    """What came back, read in full (and bounded) while the step's deadline ran."""

    status: int
    headers: CaseInsensitiveDict[str]
    text: str
    content_type: str


def _step_run(session: requests.Session, step: StepSpec, values: dict[str, str], policy: RequestPolicy) -> StepResult:
    try:
        url = render(step.url, values)
        headers = {key: render(value, values) for key, value in step.headers.items()}
        body = render(step.body, values) if step.body is not None else None
        json_body = _render_json(step.json_body, values) if step.json_body is not None else None
    except MissingVariable as exc:
        return StepResult(step.name, step.method, step.url, False, error=str(exc))
    result = StepResult(step.name, step.method, url, False)
    started = time.perf_counter()
    with deadline(session, step.timeout) as timed_out:
        try:
            answer = _exchange(session, step, policy, url, headers=headers, data=body, json=json_body)
        except (RequestRefused, AnswerRefused, requests.RequestException) as exc:
            result.error = _failure(exc, step, timed_out())
            return result
        if timed_out():  # the deadline cut an answer that had no length: what arrived is not the answer
            result.error = f"no answer within {step.timeout:g} s"
            return result
    result.elapsed_ms = round((time.perf_counter() - started) * 1000)
    result.status = answer.status
    result.response_excerpt = answer.text[:EXCERPT]
    document = _json_of(answer)
    result.assertions = [_judge(a, answer, document, result.elapsed_ms, values) for a in step.assertions]
    for variable, source in step.extract.items():
        found, value = _source_value(source, answer, document)
        if found:
            values[variable] = value if isinstance(value, str) else json.dumps(value)
        else:
            result.assertions.append(AssertionResult(f"extract {variable} from {source}", False, "a value", "none"))
    result.ok = all(a.ok for a in result.assertions)
    return result


def _exchange(session: requests.Session, step: StepSpec, policy: RequestPolicy, url: str, **send: Any) -> Answer:
    """Send the step's request (following redirects only when it asks, each hop checked) and read the answer."""
    method = step.method
    for _ in range(MAX_REDIRECTS + 1):
        policy.check(url)
        response = session.request(method, url, timeout=step.timeout, allow_redirects=False, stream=True, **send)
        with response:
            location = response.headers.get("Location")
            if not (step.follow_redirects and response.status_code in REDIRECT_STATUSES and location):
                body = body_read(response)
                text = body.decode(response.encoding or "utf-8", errors="replace")
                return Answer(response.status_code, response.headers, text, response.headers.get("Content-Type", ""))
        url = urljoin(url, location)
        if response.status_code == 303 or (response.status_code in {301, 302} and method == "POST"):
            method, send = "GET", {**send, "data": None, "json": None}  # as browsers and requests do
    raise AnswerRefused(f"more than {MAX_REDIRECTS} redirects; not followed further")


def _failure(exc: Exception, step: StepSpec, timed_out: bool) -> str:
    """What a step that got no usable answer says."""
    if timed_out or isinstance(exc, requests.Timeout):
        return f"no answer within {step.timeout:g} s"
    if isinstance(exc, RequestRefused):
        return f"not sent: {exc}"
    if isinstance(exc, AnswerRefused):
        return str(exc)
    blocked = blocked_reason(exc)
    return f"not sent: {blocked}" if blocked else f"no answer: {exc.__class__.__name__}"


_NOT_JSON = object()


def _json_of(answer: Answer) -> Any:
    try:
        return json.loads(answer.text)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _describe_not_json(answer: Answer) -> str:
    kind = answer.content_type or "no content type"
    return f"not JSON ({kind}): {answer.text[:80]!r}"


def _render_json(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return render(value, values)
    if isinstance(value, list):
        return [_render_json(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _render_json(v, values) for k, v in value.items()}
    return value


def _path(document: Any, path: str) -> tuple[bool, Any]:
    """Follow a.b.0.c into a JSON document; (False, None) when any part is missing."""
    node = document
    for part in [p for p in path.split(".") if p] if path not in {"", "$"} else []:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _source_value(source: str, answer: Answer, document: Any) -> tuple[bool, Any]:
    if source == "status":
        return True, str(answer.status)
    if source.startswith("header."):
        value = answer.headers.get(source.removeprefix("header."))
        return value is not None, value
    if document is _NOT_JSON:
        return False, None
    return _path(document, source.removeprefix("json").removeprefix("."))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _judge(
    spec: AssertionSpec, answer: Answer, document: Any, elapsed_ms: int, values: dict[str, str]
) -> AssertionResult:
    if spec.status is not None:
        return AssertionResult("status", answer.status == spec.status, str(spec.status), str(answer.status))
    if spec.response_time_ms is not None:
        ok = elapsed_ms < spec.response_time_ms
        return AssertionResult("response time", ok, f"< {spec.response_time_ms} ms", f"{elapsed_ms} ms")
    if spec.header is not None:
        subject = f"header {spec.header}"
        value = answer.headers.get(spec.header)
        found = value is not None
    else:
        subject = f"json {spec.json_path}"
        if document is _NOT_JSON:
            check = next(c for c in ("equals", "contains", "exists", "type", "matches") if c in spec.model_fields_set)
            return AssertionResult(f"{subject} {check}", False, "a JSON body", _describe_not_json(answer))
        found, value = _path(document, spec.json_path or "")
    return _check(subject, spec, found, value, values)


def _check(subject: str, spec: AssertionSpec, found: bool, value: Any, values: dict[str, str]) -> AssertionResult:
    actual = _show(value) if found else "missing"
    if "exists" in spec.model_fields_set:
        return AssertionResult(f"{subject} exists", found == spec.exists, str(spec.exists).lower(), str(found).lower())
    if "equals" in spec.model_fields_set:
        expected = _render_json(spec.equals, values)
        return AssertionResult(f"{subject} equals", found and value == expected, _show(expected), actual)
    if "contains" in spec.model_fields_set:
        needle = render(spec.contains or "", values)
        ok = found and (needle in value if isinstance(value, list | str) else needle in _show(value))
        return AssertionResult(f"{subject} contains", ok, needle, actual)
    if "type" in spec.model_fields_set:
        kind = _json_type(value) if found else "missing"
        ok = found and (kind == spec.type or (spec.type == "number" and kind == "integer"))
        return AssertionResult(f"{subject} type", ok, str(spec.type), kind)
    pattern = spec.matches or ""
    try:
        ok = found and regex.search(pattern, _show(value), timeout=MATCH_TIMEOUT) is not None
    except TimeoutError:
        return AssertionResult(
            f"{subject} matches", False, pattern, f"the pattern ran longer than {MATCH_TIMEOUT:g} s; simplify it"
        )
    return AssertionResult(f"{subject} matches", ok, pattern, actual)
