"""Gantry as two machines, as the README's "Running at scale" sets it up: a web machine and a worker machine
with different GANTRY_VAR_DIRs, sharing only PostgreSQL, Redis and the settings. The web machine has no git
mirror and no SSH key; the worker gets its key from GANTRY_SSH_PRIVATE_KEY. A host is trusted from the web
side, a deploy goes through the API, and the plan's commit list, the shipped commits and the deploy's API
tests all arrive on the web machine's pages."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import requests

from deployer.demo import setup
from deployer.demo.hosts import SshdHost
from deployer.integrations.ssh_keys import HostKey, ed25519_key_write
from tests.support.catalogs import AppRepo
from tests.support.net import free_port
from tests.support.worker import BASE_DIR

pytestmark = pytest.mark.slow

POSTGRES = "postgres://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/12"
HOST_ADDRESS = "127.0.0.16"
PASSWORD = "two-machines-password-7291"
TESTS_FILE = """smoke:
  steps:
    - name: healthy
      url: "{{host_base_url}}/healthz"
      assert:
        - {status: 200}
"""


@dataclass
class Machine:
    """One machine of a Gantry installation: its own var dir and processes, the shared settings."""

    name: str
    var_dir: Path
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=self.env, capture_output=True, text=True
        )
        if done.returncode:
            raise AssertionError(f"{self.name}: manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def start(self, label: str, *argv: str) -> None:
        log = (self.var_dir / f"{label}.log").open("wb")
        self.processes.append(subprocess.Popen(argv, cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT))

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.var_dir.glob("*.log")))

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def database() -> Iterator[str]:
    """A database of its own on the PostgreSQL server this machine runs (skipped where none runs)."""
    name = f"gantry_two_machines_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(f"{POSTGRES}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"needs PostgreSQL on 127.0.0.1:5432 ({exc})")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def machines(database: str, tmp_path: Path) -> Iterator[tuple[Machine, Machine]]:
    shared = {
        "DJANGO_SETTINGS_MODULE": "deployer.settings",
        "DATABASE_URL": database,
        "REDIS_URL": REDIS,
        "GANTRY_BROKER_PREFIX": f"two-machines-{uuid.uuid4().hex[:8]}:",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "GANTRY_BRANCH_SYNC_SECONDS": "2",
        "LOG_LEVEL": "INFO",
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GANTRY_", "DJANGO_", "DATABASE_", "REDIS_"))}
    key = tmp_path / "gantry-key" / "id_ed25519"
    key.parent.mkdir()
    ed25519_key_write(key, "gantry@two-machines")
    web_dir, worker_dir = tmp_path / "web-machine", tmp_path / "worker-machine"
    web = Machine("web", web_dir, {**base, **shared, "GANTRY_VAR_DIR": str(web_dir)})
    worker_env = {"GANTRY_VAR_DIR": str(worker_dir), "GANTRY_SSH_PRIVATE_KEY": key.read_text()}
    worker = Machine("worker", worker_dir, {**base, **shared, **worker_env})
    for machine in (web, worker):
        machine.var_dir.mkdir()
    try:
        yield web, worker
    finally:
        web.stop()
        worker.stop()
        key.unlink()


def test_a_web_machine_and_a_worker_machine_share_only_the_database_and_redis(
    machines: tuple[Machine, Machine], app_repo: AppRepo, tmp_path: Path
) -> None:
    web, worker = machines
    setup.repo_branch(app_repo.path, "two-machines", {".gantry/tests.yml": TESTS_FILE}, "Tests on two machines")
    public_key = (tmp_path / "gantry-key" / "id_ed25519.pub").read_text()
    host = SshdHost(tmp_path / "host", HOST_ADDRESS, free_port(HOST_ADDRESS))
    host.prepare(public_key)
    web.processes.append(host.start())  # (the host is a machine of its own; stopped with the web's processes)
    app_port = free_port(HOST_ADDRESS)

    # The web machine: the schema, an account with an API token, the catalog, and the host trusted from here.
    web.manage("migrate", "--noinput")
    web.manage("shell", "-c", _ADMIN.replace("PASSWORD", PASSWORD))
    catalog = tmp_path / "catalog.yml"
    catalog.write_text(_catalog(app_repo, host, app_port))
    web.manage("load_catalog", str(catalog))
    token = web.manage("api_token", "admin", "--name", "ci", "--deploy", "app/test").split()[-1]
    fingerprint = HostKey.of(host.host_key()).fingerprint  # as its owner would read it out
    trusted = web.manage("trust_host", f"{host.address}:{host.port}", "--yes", "--fingerprint", fingerprint)
    assert "trusted, for every machine" in trusted
    port = free_port("127.0.0.1")
    web.start("gunicorn", sys.executable, "-m", "gunicorn", "deployer.wsgi", "--bind", f"127.0.0.1:{port}")
    # The worker machine: a worker of every queue, and the one scheduler.
    worker.start("worker", sys.executable, "-m", "celery", "-A", "deployer", "worker", "-Q", "deploys,sync,notify")
    worker.start("beat", sys.executable, "-m", "celery", "-A", "deployer", "beat", "-s", str(worker.var_dir / "beat"))
    api = _Api(f"http://127.0.0.1:{port}", token)

    try:
        _wait(lambda: {b["name"] for b in api.get("/api/v1/services/app/branches/")} >= {"main", "two-machines"})
        first = api.deploy("main")
        assert first["status"] == "succeeded", first

        session = api.signed_in("admin", PASSWORD)
        plan = _plan(session, api.base, "two-machines")
        assert "Tests on two machines" in plan and "1 commit:" in plan, "the plan's commits, from the worker"

        second = api.deploy("two-machines")
        assert second["status"] == "succeeded", second
        page = session.get(f"{api.base}/deploys/{second['id']}/", timeout=10).text
        assert 'data-commits="1"' in page and "Tests on two machines" in page, "the commits it shipped"
        assert "smoke" in page and "healthy" in page, "its API tests, from the branch's own file"
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{web.logs()}\n{worker.logs()}") from exc

    assert not (web.var_dir / "mirrors").exists(), "the web machine never needed a git mirror"
    assert not (web.var_dir / "ssh").exists(), "nor an SSH key"


_ADMIN = """
from django.contrib.auth import get_user_model
from deployer.models import Grant
get_user_model().objects.create_superuser("admin", "admin@example.com", "PASSWORD")
Grant.objects.create(principal="admin", role="admin")
"""


def _catalog(app_repo: AppRepo, host: SshdHost, app_port: int) -> str:
    return f"""
services:
  app:
    repo: {app_repo.path}
    environments:
      test:
        deploy_path: {host.directory / "srv" / "app"}
        build_command: sh build.sh
        restart_command: sh bin/restart {app_port}
        health_check_url: http://{{address}}:{app_port}/healthz
        host_base_url: http://{{address}}:{app_port}
        hosts:
          - {{address: {host.address}, port: {host.port}, user: {host.user}}}
"""


class _Api:
    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str) -> list[dict[str, object]] | dict[str, object]:
        answer = self.session.get(self.base + path, timeout=10)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        return body["results"] if isinstance(body, dict) and "results" in body else body

    def deploy(self, ref: str) -> dict[str, object]:
        body = {"service": "app", "environment": "test", "ref": ref}
        answer = self.session.post(f"{self.base}/api/v1/deploys/", json=body, timeout=10)
        assert answer.status_code == 201, answer.text
        deploy_id = answer.json()["id"]
        found: dict[str, object] = {}

        def ended() -> bool:
            found.update(self.get(f"/api/v1/deploys/{deploy_id}/"))  # type: ignore[arg-type]
            return found["status"] not in {"queued", "running", "awaiting_approval"}

        _wait(ended, timeout=90)
        return found

    def signed_in(self, username: str, password: str) -> requests.Session:
        session = requests.Session()
        session.get(f"{self.base}/accounts/login/", timeout=10)
        answer = session.post(
            f"{self.base}/accounts/login/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
            timeout=10,
        )
        assert answer.status_code == 200 and "sessionid" in session.cookies, answer.text[-500:]
        return session


def _plan(session: requests.Session, base: str, ref: str) -> str:
    """The plan page, and its commits as the page's polling brings them."""
    page = session.get(f"{base}/services/app/test/plan", params={"ref": ref}, timeout=10).text
    deadline = time.monotonic() + 30
    while (
        poll := re.search(r'<div id="plan-changes" class="poll" hx-get="([^"]+)"', page)
    ) and time.monotonic() < deadline:
        time.sleep(0.2)
        page = session.get(base + poll.group(1), timeout=10).text
    return page


def _wait(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():  # type: ignore[operator]
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise AssertionError(f"not within {timeout} s")
