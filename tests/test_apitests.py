"""Post-deploy API test suites: the schema's refusals and the runner against a real local HTTP server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from pydantic import ValidationError
from ruamel.yaml import YAML

from deployer.apitest_schema import SuiteSpec
from deployer.apitests import SuiteResult, suite_run
from tests.fakes.server import FakeServer, Request, Response


class App(FakeServer):
    """A small service under test."""

    def __init__(self) -> None:
        super().__init__()
        self.route("GET", r"/version", lambda r: Response(200, {"sha": "abc123", "items": [{"id": 7}], "n": 2.5}))
        self.route("POST", r"/login", self._login)
        self.route("GET", r"/me", self._me)
        self.route("GET", r"/html", lambda r: Response(200, "<!doctype html><h1>Welcome</h1>"))
        self.route("GET", r"/slow", self._slow)

    def _login(self, request: Request) -> Response:
        user = request.json()["user"]
        return Response(201, {"token": f"t-{user}"}, {"X-Session": "s1"})

    def _me(self, request: Request) -> Response:
        if request.headers.get("authorization") != "Bearer t-dana":
            return Response(401, {"error": "who are you"})
        return Response(200, {"user": "dana"})

    def _slow(self, request: Request) -> Response:
        time.sleep(2)
        return Response(200, {"late": True})


@pytest.fixture(scope="module")
def app() -> Iterator[App]:
    server = App().start()
    yield server
    server.stop()


def suite(text: str) -> SuiteSpec:
    return SuiteSpec.model_validate(YAML(typ="safe").load(text))


def run(app: App, text: str, **variables: str) -> SuiteResult:
    return suite_run("t", suite(text), {"base_url": app.url, **variables})


def test_steps_chain_through_extracted_variables(app: App) -> None:
    result = run(
        app,
        """
steps:
  - name: log in
    method: POST
    url: "{{base_url}}/login"
    json: {user: "{{who}}"}
    extract: {token: json.token, session: header.X-Session, code: status}
    assert: [{status: 201}]
  - name: who am I
    url: "{{base_url}}/me"
    headers: {Authorization: "Bearer {{token}}", X-Trace: "{{session}}-{{code}}"}
    assert:
      - status: 200
      - json: user
        equals: dana
""",
        who="dana",
    )
    assert result.ok, result
    assert [step.status for step in result.steps] == [201, 200]


@pytest.mark.parametrize(
    ("assertion", "ok", "expected", "actual"),
    [
        ("{status: 200}", True, "200", "200"),
        ("{status: 404}", False, "404", "200"),
        ("{json: sha, equals: abc123}", True, "abc123", "abc123"),
        ("{json: sha, equals: '{{expected}}'}", False, "zzz", "abc123"),
        ("{json: items.0.id, equals: 7}", True, "7", "7"),
        ("{json: sha, contains: c12}", True, "c12", "abc123"),
        ("{json: sha, contains: xyz}", False, "xyz", "abc123"),
        ("{json: items, exists: true}", True, "true", "true"),
        ("{json: nope.deeper, exists: true}", False, "true", "false"),
        ("{json: nope, exists: false}", True, "false", "false"),
        ("{json: n, type: number}", True, "number", "number"),
        ("{json: items, type: object}", False, "object", "array"),
        ("{json: sha, matches: '^a.c'}", True, "^a.c", "abc123"),
        ("{json: sha, matches: '^z'}", False, "^z", "abc123"),
        ("{header: Content-Type, contains: json}", True, "json", "application/json; charset=utf-8"),
        ("{header: X-Missing, exists: true}", False, "true", "false"),
        ("{response_time_ms: 5000}", True, "< 5000 ms", None),
        ("{response_time_ms: 1}", None, "< 1 ms", None),
    ],
)
def test_each_assertion_kind_passes_and_fails(
    app: App, assertion: str, ok: bool | None, expected: str, actual: str | None
) -> None:
    result = run(app, f"steps: [{{name: v, url: '{{{{base_url}}}}/version', assert: [{assertion}]}}]", expected="zzz")
    (judged,) = result.steps[0].assertions
    if ok is not None:
        assert judged.ok is ok, judged
    assert judged.expected == expected
    if actual is not None:
        assert judged.actual == actual


def test_a_step_that_times_out_fails_that_step_and_the_suite_goes_on(app: App) -> None:
    started = time.monotonic()
    result = run(
        app,
        """
steps:
  - {name: slow, url: "{{base_url}}/slow", timeout: 0.5, assert: [{status: 200}]}
  - {name: fast, url: "{{base_url}}/version", assert: [{status: 200}]}
""",
    )
    assert time.monotonic() - started < 2, "the runner did not wait for the slow answer"
    assert [step.ok for step in result.steps] == [False, True]
    assert result.steps[0].error == "no answer within 0.5 s"


def test_html_where_json_was_expected_says_so(app: App) -> None:
    result = run(app, "steps: [{name: page, url: '{{base_url}}/html', assert: [{json: sha, exists: true}]}]")
    (judged,) = result.steps[0].assertions
    assert not judged.ok
    assert judged.actual.startswith("not JSON (text/html;charset=utf-8): '<!doctype html>")


def test_a_missing_variable_fails_the_step_with_the_known_ones(app: App) -> None:
    result = run(app, "steps: [{name: v, url: '{{base_url}}/{{nope}}'}]")
    assert not result.ok
    assert result.steps[0].error.startswith("unknown variable {{nope}} (known: base_url")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps: [{name: v, url: x, assert: [{json: a, equal: 1}]}]", "Extra inputs are not permitted"),
        ("steps: [{name: v, url: x, assert: [{json: a}]}]", "needs exactly one of equals, contains"),
        ("steps: [{name: v, url: x, assert: [{status: 200, json: a, exists: true}]}]", "exactly one of status"),
        ("steps: [{name: v, url: x, assert: [{json: a, matches: '('}]}]", "not a valid regular expression"),
        ("variables: {a: '{{b}}', b: '{{a}}'}\nsteps: [{name: v, url: x}]", "cycle: a → b → a"),
        ("steps: [{name: v, url: x, extract: {t: body.token}}]", "must be json.<path>, header.<name> or status"),
        ("steps: []", "at least 1 item"),
    ],
)
def test_bad_suites_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValidationError) as error:
        suite(text)
    assert message in str(error.value)
