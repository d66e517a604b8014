"""Shared fixtures: personas, real sshd hosts, a real Celery worker, the app repository."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management.commands import flush
from django.db.models import Q
from django.test import Client
from django.utils import timezone
from fabric import Connection
from playwright.sync_api import Browser, sync_playwright

from deployer.catalog.load import catalog_apply, catalog_parse
from deployer.choices import DeployStatus, Role
from deployer.demo import setup
from deployer.demo.hosts import SshdHost
from deployer.environments.audit import audit_erasure
from deployer.integrations.ssh import Target, open_connection
from deployer.integrations.ssh_keys import HostKey
from deployer.models import Branch, Deploy, Environment, Grant, TrustedHostKey
from deployer.sources.branches import branch_sync
from tests.fakes.github import FakeGitHub
from tests.fakes.grafana import FakeGrafana
from tests.fakes.jenkins import FakeJenkins
from tests.fakes.slack import FakeSlack
from tests.support.builder_account import Builder, builder_started
from tests.support.catalogs import SMALL_CATALOG, AppRepo, MakeEnvironment
from tests.support.constants import DEMO_SECRET, HOOK_SECRET, SHOP_SECRET
from tests.support.integrations import integration_settings
from tests.support.net import TEST_ADDRESSES, free_port
from tests.support.prometheus import ADDRESS as PROMETHEUS_ADDRESS
from tests.support.shop import ITEMS, MIGRATE
from tests.support.worker import Worker


@pytest.fixture(autouse=True, scope="session")
def _test_databases_may_be_emptied() -> Iterator[None]:
    """pytest-django empties the database after each transactional test (`flush`); the audit log's
    append-only triggers allow that only inside audit_erasure, as they would for an operator."""
    original = flush.Command.handle

    def handle(self: flush.Command, *args: object, **options: object) -> None:
        _deploys_settled()
        _database_quiet()
        with audit_erasure():
            original(self, *args, **options)

    flush.Command.handle = handle
    yield
    flush.Command.handle = original


def _deploys_settled(timeout: float = 60.0) -> None:
    """Before a test's tables are emptied, no deploy it started may still be in a worker's hands: emptying
    them (TRUNCATE) while the session's worker writes a deploy's end deadlocks on PostgreSQL. A queued deploy
    no worker has claimed yet is cancelled (the claim then stands down); one a live worker runs (its heartbeat
    is fresh, or it was claimed a moment ago) is waited for; a row a test made RUNNING by hand is waited for
    at most the heartbeat timeout."""
    Deploy.objects.filter(status=DeployStatus.QUEUED).update(status=DeployStatus.CANCELLED)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = timezone.now() - timedelta(seconds=settings.DEPLOY_HEARTBEAT_TIMEOUT)
        live = Q(heartbeat_at__gte=fresh) | Q(started_at__gte=fresh)  # stamped, or claimed a moment ago
        if not Deploy.objects.filter(live, status=DeployStatus.RUNNING).exists():
            return
        time.sleep(0.1)


def _database_quiet(timeout: float = 10.0) -> None:
    """PostgreSQL: no other session of the test database is inside a transaction when the tables are emptied.
    A worker claiming a deploy the test just cancelled holds a row lock on deployer_deploy and asks for one on
    the environment; TRUNCATE, taking its tables one by one, then deadlocks with it (seen once in a full run:
    test_schedulers' lease rounds). Waiting for that transaction to end removes the overlap."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    busy = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND backend_type = 'client backend' AND state IN ('active', 'idle in transaction')"
    )
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(busy)
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.05)


@pytest.fixture
def conn(sshd_processes: list[SshdHost]) -> Iterator[Connection]:
    """An open SSH connection to the first test host, its key trusted."""
    host = sshd_processes[0]
    connection = open_connection(Target(host.address, host.port, host.user), [HostKey.of(host.host_key())])
    yield connection
    connection.close()


# --- personas ---------------------------------------------------------------


@pytest.fixture
def deployer(db: None) -> AbstractBaseUser:
    """An engineer who deploys to non-production environments (a deployer grant everywhere)."""
    user = get_user_model().objects.create_user("dana", "dana@example.com", "dana-password")
    Grant.objects.create(principal="dana", role=Role.DEPLOYER)
    return user


@pytest.fixture
def dana_deploys_to_prod(deployer: AbstractBaseUser) -> None:
    """For tests about production rules other than permissions: dana may deploy to production too."""
    Grant.objects.create(principal="dana", role=Role.PROD_DEPLOYER)


@pytest.fixture
def deployer_client(deployer: AbstractBaseUser) -> Client:
    client = Client()
    client.force_login(deployer)
    return client


# --- a catalog without live hosts (for rules and pages) -----------------------


@pytest.fixture
def environment(db: None) -> Environment:
    """The `test` environment of service `app`, with branches main and feature/x known."""
    catalog_apply(catalog_parse(SMALL_CATALOG))
    env = Environment.objects.select_related("service").get(service__name="app", name="test")
    for name, sha in [("main", "a" * 40), ("feature/x", "b" * 40)]:
        Branch.objects.create(service=env.service, name=name, sha=sha, author="Ada", message=f"tip of {name}")
    return env


# --- real processes -----------------------------------------------------------


@pytest.fixture(scope="session")
def sshd_processes() -> Iterator[list[SshdHost]]:
    """Three real sshd hosts on loopback addresses that let Gantry's key in (for the whole session)."""
    hosts = [SshdHost(settings.VAR_DIR / "test-hosts" / f"h{n}", a, free_port(a)) for n, a in enumerate(TEST_ADDRESSES)]
    setup.hosts_authorize(hosts)
    processes = [host.start() for host in hosts]
    yield hosts
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def ssh_hosts(sshd_processes: list[SshdHost], django_db_setup: None, django_db_blocker: object) -> list[SshdHost]:
    """The three sshd hosts, their keys trusted in the database (written for each test: a transactional
    test empties the tables when it ends)."""
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        for host in sshd_processes:  # test data, written as such (trusting through the verb would audit it)
            key = HostKey.of(host.host_key())
            TrustedHostKey.objects.update_or_create(
                host=Target(host.address, host.port, host.user).known_hosts_name,
                key_type=key.key_type,
                defaults={"key": key.base64, "fingerprint": key.fingerprint, "trusted_by_name": "tests"},
            )
    return sshd_processes


# --- fake GitHub and Jenkins ---------------------------------------------------


@pytest.fixture(scope="session")
def fakes() -> Iterator[tuple[FakeGitHub, FakeJenkins]]:
    """The fake GitHub and Jenkins servers, one each for the session (reset by each test that uses them)."""
    fake_github, fake_jenkins = FakeGitHub().start(), FakeJenkins().start()
    yield fake_github, fake_jenkins
    fake_github.stop()
    fake_jenkins.stop()


@pytest.fixture
def integrations(fakes: tuple[FakeGitHub, FakeJenkins], settings: object) -> tuple[FakeGitHub, FakeJenkins]:
    """GitHub and Jenkins switched on (pointing at the fakes, emptied) in this test."""
    fake_github, fake_jenkins = fakes
    fake_github.reset()
    fake_jenkins.reset()
    for name, value in integration_settings(fake_github, fake_jenkins).items():
        setattr(settings, name, value)
    return fake_github, fake_jenkins


@pytest.fixture
def github(integrations: tuple[FakeGitHub, FakeJenkins]) -> FakeGitHub:
    return integrations[0]


@pytest.fixture
def jenkins_server(integrations: tuple[FakeGitHub, FakeJenkins]) -> FakeJenkins:
    return integrations[1]


@pytest.fixture(scope="session")
def slack_server() -> Iterator[FakeSlack]:
    """The fake Slack Web API for the session (reset by each test that uses `slack`)."""
    fake = FakeSlack().start()
    yield fake
    fake.stop()


@pytest.fixture
def slack(slack_server: FakeSlack, settings: object) -> FakeSlack:
    """Slack switched on in this test (the worker always has the token; messages go out only where a
    team names a channel)."""
    slack_server.reset()
    settings.SLACK_BOT_TOKEN = slack_server.token
    settings.SLACK_API_URL = slack_server.api_url
    settings.SLACK_SIGNING_SECRET = slack_server.signing_secret
    settings.SLACK_RESPONSE_URL_PREFIX = slack_server.url + "/"
    return slack_server


@pytest.fixture(scope="session")
def grafana_server() -> Iterator[FakeGrafana]:
    """The fake Grafana for the session: the worker always sends it the change timeline."""
    fake = FakeGrafana().start()
    yield fake
    fake.stop()


@pytest.fixture
def grafana(grafana_server: FakeGrafana, settings: object) -> FakeGrafana:
    """Grafana switched on in this test's process too (its audit points), emptied."""
    grafana_server.reset()
    settings.GRAFANA_URL = grafana_server.url
    settings.GRAFANA_TOKEN = grafana_server.token
    return grafana_server


# A test that uses one of these (or is marked slow) is heavy: `make test-fast` leaves it out.
HEAVY_FIXTURES = {
    "celery_worker",
    "sshd_processes",
    "ssh_hosts",
    "conn",
    "make_environment",
    "builder",
    "browser",
    "prometheus_port",
    "demo_prometheus_port",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks heavy tests (HEAVY_FIXTURES). The PostgreSQL half of `make test` runs what touches SQL,
    transactions, locking or the Redis broker; tests marked one_backend (the backend makes no difference)
    run in the SQLite half only, which keeps CI affordable. GANTRY_TEST_BOTH_BACKENDS=1 runs them here too."""
    for item in items:
        if item.get_closest_marker("slow") or HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.heavy)
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or os.environ.get("GANTRY_TEST_BOTH_BACKENDS"):
        return
    neutral = [item for item in items if item.get_closest_marker("one_backend")]
    if neutral:
        config.hook.pytest_deselected(items=neutral)
        items[:] = [item for item in items if not item.get_closest_marker("one_backend")]


@pytest.fixture(scope="session")
def celery_worker(
    django_db_setup: None,
    django_db_blocker: object,
    fakes: tuple[FakeGitHub, FakeJenkins],
    slack_server: FakeSlack,
    grafana_server: FakeGrafana,
    prometheus_port: int,
    demo_prometheus_port: int,
) -> Iterator[Worker]:
    """A real Celery worker process consuming the deploys, sync and notify queues (GitHub, Jenkins and
    Slack = the fakes; Prometheus "main" where tests/support/prometheus.py starts one)."""
    slack_env = {
        # Workers hold secrets; no test environment grants this one (tests/apitests/test_apitests.py tries to steal it).
        "GANTRY_SECRET_PROD_DB_PASSWORD": "prod-db-5678",
        "GANTRY_SECRET_SHOP_SECRET": SHOP_SECRET,  # granted to a release's config (deploys/test_release_model.py)
        "GANTRY_SECRET_DEMO_API_KEY": DEMO_SECRET,  # the demo's config (tests/ops/test_demo.py)
        "GANTRY_WEBHOOK_WEB_TEST": HOOK_SECRET,
        "SLACK_BOT_TOKEN": slack_server.token,
        "SLACK_API_URL": slack_server.api_url,
        "SLACK_SIGNING_SECRET": slack_server.signing_secret,  # the messages carry buttons
        "GANTRY_PROMETHEUS": (
            f"main=http://{PROMETHEUS_ADDRESS}:{prometheus_port},demo=http://127.0.0.1:{demo_prometheus_port}"
        ),
        "GANTRY_GRAFANA_URL": grafana_server.url,
        "GANTRY_GRAFANA_TOKEN": grafana_server.token,
    }
    worker = Worker(env={**integration_settings(*fakes), **slack_env})
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def prometheus_port() -> int:
    """Where the canary tests' Prometheus listens (started by the tests that need it; the worker knows it)."""
    return free_port(PROMETHEUS_ADDRESS)


@pytest.fixture(scope="session")
def demo_prometheus_port() -> int:
    """Where the demo's Prometheus listens in tests/ops/test_demo.py (the worker knows it as "demo")."""
    return free_port("127.0.0.1")


@pytest.fixture(scope="session")
def app_port() -> int:
    return free_port(*TEST_ADDRESSES)


@pytest.fixture(scope="session")
def app_repo(tmp_path_factory: pytest.TempPathFactory) -> AppRepo:
    """The demo service's repository, plus branches whose build fails or hangs."""
    path = tmp_path_factory.mktemp("repo") / "app"
    setup.repo_create(path)
    setup.repo_branch(path, "broken-build", {"build.sh": "echo 'compiler says no' >&2\nexit 3\n"}, "Break it")
    slow = 'echo "thinking..."\nsleep 4\ntouch "$GANTRY_DEPLOY_PATH/shared/build-finished"\n'
    setup.repo_branch(path, "slow-build", {"build.sh": slow}, "Take too long")
    restart = (setup.APP_SOURCE / "bin" / "restart").read_text()
    setup.repo_branch(path, "slow-restart", {"bin/restart": restart + "sleep 2\n"}, "Restart slowly")
    return AppRepo(path)


# --- environments -------------------------------------------------------------


@pytest.fixture
def make_environment(
    transactional_db: None, ssh_hosts: list[SshdHost], app_repo: AppRepo, app_port: int, tmp_path: Path
) -> Iterator[MakeEnvironment]:
    """Load a catalog whose `test` environment spans some of the sshd hosts; sync its branches."""
    deploy_roots: list[Path] = []

    def make(
        hosts: list[SshdHost] | None = None,
        *,
        releases_to_keep: int = 5,
        health_timeout: int = 5,
        command_timeout: int = 60,
        github_repo: str = "",
        options: dict[str, str | None] | None = None,
        service_yaml: str = "",
        host_roles: list[str] | None = None,
    ) -> Environment:
        hosts = ssh_hosts if hosts is None else hosts
        lines = []
        for index, host in enumerate(hosts):
            root = tmp_path / "hosts" / f"{host.address}-{host.port}" / "srv" / "app"
            deploy_roots.append(root)
            roles = f", roles: {host_roles[index]}" if host_roles and host_roles[index] else ""
            lines.append(
                f"          - {{address: {host.address}, port: {host.port}, user: {host.user}, "
                f"deploy_path: {root}{roles}}}"
            )
        keys: dict[str, str | None] = {
            "deploy_path": "/srv/app",
            "build_command": "sh build.sh",
            "restart_command": f"sh bin/restart {app_port}",
            "health_check_url": f"http://{{address}}:{app_port}/healthz",
            "health_check_timeout": str(health_timeout),
            "releases_to_keep": str(releases_to_keep),
            "command_timeout": str(command_timeout),
            **(options or {}),  # YAML values: a test's option replaces the default of the same key (None: drops it)
        }
        keys = {key: value for key, value in keys.items() if value is not None}
        catalog = f"""
teams:
  web: {{}}
services:
  app:
    team: web
    repo: {app_repo.path}
    {"github: " + github_repo if github_repo else ""}
{service_yaml}
    environments:
      test:
""" + "".join(f"        {key}: {value}\n" for key, value in keys.items())
        catalog += "        hosts:\n" + "\n".join(lines)
        catalog_apply(catalog_parse(catalog))
        environment = Environment.objects.select_related("service").get(service__name="app", name="test")
        branch_sync(service=environment.service)
        return environment

    yield make
    for root in deploy_roots:
        _stop_app(root / "shared" / "app.pid")
        _stop_app(root / "shared" / "worker.pid")


def _stop_app(pidfile: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pidfile.read_text()), signal.SIGTERM)


@pytest.fixture
def builder(ssh_hosts: list[SshdHost]) -> Iterator[Builder]:
    with builder_started("127.0.0.14", free_port("127.0.0.14")) as started:
        key = HostKey.of(started.host.host_key())
        TrustedHostKey.objects.update_or_create(
            host=Target(started.host.address, started.host.port, started.host.user).known_hosts_name,
            key_type=key.key_type,
            defaults={"key": key.base64, "fingerprint": key.fingerprint, "trusted_by_name": "tests"},
        )
        yield started


# --- a real browser -------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
# Headless Chromium on a machine without outside network: no background traffic.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the session: Playwright's sync API runs one event loop in this thread, so
    every browser test shares it."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (make test does this as root)")
    # The test's own database reads are still synchronous: tell Django that is intended.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def shop(app_repo: AppRepo, tmp_path: Path) -> dict[str, Path]:
    """Branches of the app with a migration step, and the database the hosts share (as a DB server would be)."""
    setup.repo_branch(app_repo.path, "migrations", {"migrate.py": MIGRATE, "migrations/0001_items.sql": ITEMS}, "M1")
    broken = "CREATE TABLE prices (id INTEGER PRIMARY KEY);\nCREATE TABLE nonsense (;\n"
    setup.repo_branch(app_repo.path, "bad-migration", {"migrations/0002_price.sql": broken}, "M2", base="migrations")
    return {"database": tmp_path / "shop.sqlite3", "runs": tmp_path / "migrate-runs.log"}
