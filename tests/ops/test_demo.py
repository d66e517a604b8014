"""`make run`'s demo, set up as `manage.py demo_setup` does it and deployed through a real worker to its own
loopback sshd hosts: a web and a worker role, a migration applied once by release_command, a config secret,
a branch that adds a migration and the rollback warning it earns; ports another program holds are skipped."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import socket
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from deployer.choices import DeployStatus
from deployer.demo import setup
from deployer.demo.hosts import SshdHost
from deployer.demo.watching import users, watching_configure, watching_of, watching_start
from deployer.deploys.error_budget import budget_read
from deployer.deploys.request import deploy_request, deploy_rollback
from deployer.deploys.rules import DeployOptions
from deployer.deploys.schema_changes import RollbackNeedsConfirmation
from deployer.models import DeployLog, Environment, Measurement
from tests.support.constants import DEMO_SECRET
from tests.support.waiting import wait_for_deploy
from tests.support.worker import Worker

pytestmark = [pytest.mark.slow, pytest.mark.one_backend]

ADDRESSES = ["127.0.0.51", "127.0.0.52"]


@pytest.fixture
def demo(settings: Any, transactional_db: None, demo_prometheus_port: int) -> Iterator[list[SshdHost]]:
    """The demo set up on addresses of its own while something else holds the usual ssh port there, with
    what `make run` runs beside its hosts: HAProxy, Prometheus and users sending requests through HAProxy."""
    settings.DEMO_ADDRESSES = ADDRESSES
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind((ADDRESSES[0], settings.DEMO_SSH_PORT))
    squatter.listen()
    processes = []
    try:
        out = io.StringIO()
        call_command("demo_setup", stdout=out)
        # The next free one (an earlier test's sshd may leave its port in TIME_WAIT: that one is skipped too).
        chosen = re.search(r"using ssh port (\d+)", out.getvalue())
        assert chosen and int(chosen.group(1)) > settings.DEMO_SSH_PORT, out.getvalue()
        kept = setup.admin_password_file()  # made for this install, printed once, kept 0600
        password = kept.read_text().strip()
        assert len(password) >= 16 and kept.stat().st_mode & 0o777 == 0o600
        assert f"as admin / {password}" in out.getvalue()
        assert get_user_model().objects.get(username="admin").check_password(password)
        assert not setup.admin_ensure(), "made once"
        hosts = setup.demo_hosts()
        processes = [host.start() for host in hosts]
        watching = watching_of(setup.demo_dir())
        assert watching is not None, "make test installs haproxy and prometheus: the demo watches its canaries"
        ports = {"lb": watching.lb_port, "exporter": watching.exporter_port, "prometheus": demo_prometheus_port}
        watching = watching_configure(setup.demo_dir(), ADDRESSES, setup.demo_ports()["app"], ports)
        processes += watching_start(watching)
        with users(watching.site_url):
            yield hosts
    finally:
        squatter.close()
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        for host in setup.demo_hosts():
            for name in ("app", "worker"):
                with contextlib.suppress(OSError, ValueError):
                    pid = host.directory / "srv" / "demo" / "shared" / f"{name}.pid"
                    os.kill(int(pid.read_text()), signal.SIGTERM)


def applied(database: Path) -> list[str]:
    with sqlite3.connect(database) as connection:
        return [row[0] for row in connection.execute("SELECT name FROM applied ORDER BY name")]


def test_the_demo_deploys_a_web_a_worker_and_a_migration(demo: list[SshdHost], celery_worker: Worker) -> None:
    environment = Environment.objects.get(service__name="demo", name="test")
    admin = get_user_model().objects.get(username=setup.DEMO_ADMIN)
    assert [host.port for host in environment.hosts.all()] == [demo[0].port] * 2

    first = wait_for_deploy(deploy_request(environment=environment, ref="main", user=admin).pk, celery_worker)

    assert first.status == DeployStatus.SUCCEEDED, first.reason
    database = setup.demo_dir() / "demo.sqlite3"
    assert applied(database) == ["0001_visits.sql"]
    roles = {host.address.split("@")[1]: [(r["name"], r["state"]) for r in host.roles] for host in first.hosts.all()}
    assert roles == {
        f"{ADDRESSES[0]}:{demo[0].port}": [("web", "healthy"), ("worker", "healthy")],
        f"{ADDRESSES[1]}:{demo[1].port}": [("web", "healthy")],
    }
    env_file = demo[0].directory / "srv" / "demo" / "shared" / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600 and f"DEMO_API_KEY='{DEMO_SECRET}'" in env_file.read_text()
    logged = " ".join(DeployLog.objects.filter(deploy=first).values_list("message", flat=True))
    assert DEMO_SECRET not in logged and "schema: 0001_visits.sql" in logged

    second = wait_for_deploy(deploy_request(environment=environment, ref="add-migration", user=admin).pk, celery_worker)

    assert second.status == DeployStatus.SUCCEEDED, second.reason
    assert second.migrations == [{"change": "A", "path": "migrations/0002_visit_paths.sql"}]
    assert applied(database) == ["0001_visits.sql", "0002_visit_paths.sql"]
    with pytest.raises(RollbackNeedsConfirmation, match=r"shipped migrations/0002_visit_paths\.sql"):
        deploy_rollback(environment=environment, user=admin)

    # The demo's other branches lack add-migration's migration: going there asks first (the schema guard).
    refused = wait_for_deploy(
        deploy_request(environment=environment, ref="feature/shout", user=admin).pk, celery_worker
    )
    assert refused.status == DeployStatus.FAILED
    assert refused.reason.startswith("not deployed: feature/shout lacks migration files that test ran until now")
    confirmed = DeployOptions(confirm_schema=True)
    shout = deploy_request(environment=environment, ref="feature/shout", user=admin, options=confirmed)
    shout = wait_for_deploy(shout.pk, celery_worker)
    assert shout.status == DeployStatus.SUCCEEDED, shout.reason
    assert applied(database) == ["0001_visits.sql", "0002_visit_paths.sql"]


def test_the_readmes_bad_canary_is_rolled_back_by_its_error_rate(
    demo: list[SshdHost], celery_worker: Worker, settings: Any, demo_prometheus_port: int
) -> None:
    """What the README tells a newcomer to try: deploy main, then bad-canary, and watch it go back."""
    environment = Environment.objects.get(service__name="demo", name="test")
    admin = get_user_model().objects.get(username=setup.DEMO_ADMIN)
    assert environment.analysis["prometheus"] == "demo" and environment.lb_backend == "app"
    first = wait_for_deploy(deploy_request(environment=environment, ref="main", user=admin).pk, celery_worker)
    assert first.status == DeployStatus.SUCCEEDED, first.reason

    bad = wait_for_deploy(deploy_request(environment=environment, ref="bad-canary", user=admin).pk, celery_worker, 120)

    assert bad.status == DeployStatus.ROLLED_BACK, bad.reason
    assert "canary analysis" in bad.reason and "error_rate failed" in bad.reason, bad.reason
    failed = Measurement.objects.filter(deploy=bad, verdict=Measurement.Verdict.FAIL).first()
    assert failed is not None and failed.canary is not None and failed.canary > 0.01, bad.reason

    # The demo's SLO over HAProxy's counters saw those errors (the scheduler reads it every minute).
    settings.PROMETHEUS_SERVERS = {"demo": f"http://127.0.0.1:{demo_prometheus_port}"}
    reading = budget_read(environment.service)
    assert reading.error == "" and reading.remaining is not None and reading.remaining < 1, reading.error


def test_demo_branches_made_before_the_database_are_made_again_on_main(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    setup.repo_create(repo)
    setup.repo_add_database(repo)
    assert setup.demo_branches_rebase(repo) == []
    setup.repo_branch(repo, "broken-health", {"UNHEALTHY": "x\n"}, "Old-style branch", base="main~1")
    assert setup.demo_branches_rebase(repo) == ["broken-health"]
    assert setup.git(repo, "show", "broken-health:migrate.py")
