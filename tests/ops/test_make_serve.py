"""`make serve`: a Gantry of one's own on a fresh machine, without the demo. It migrates, says what is still
to do (the first admin, the catalog), and runs the web, the workers and the scheduler; the quick start's
`createsuperuser` then signs in."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.support.net import free_port
from tests.support.worker import BASE_DIR

pytestmark = [pytest.mark.one_backend, pytest.mark.slow]  # SQLite and the embedded broker: what one box starts with


def test_make_serve_runs_gantry_without_the_demo_and_the_first_admin_signs_in(tmp_path: Path) -> None:
    port = free_port("127.0.0.1")
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env |= {"GANTRY_VAR_DIR": str(var), "GANTRY_PORT": str(port), "GANTRY_BASE_URL": f"http://127.0.0.1:{port}"}
    log = tmp_path / "serve.log"
    serve = subprocess.Popen(
        ["make", "--no-print-directory", "serve"],
        cwd=BASE_DIR,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, serve, log)
        said = log.read_text()
        assert "make the first admin:  .venv/bin/python manage.py createsuperuser" in said
        assert "load_catalog catalog.yml" in said
        for process in ("web.1", "deploys.1", "worker.1", "beat.1"):
            assert f"{process} started (pid=" in said, process
        assert "hosts.1" not in said and "demo" not in said.lower(), "no demo process, host or service"

        made = subprocess.run(
            [str(BASE_DIR / ".venv/bin/python"), "manage.py", "createsuperuser", "--noinput"],
            cwd=BASE_DIR,
            env=env
            | {
                "DJANGO_SUPERUSER_USERNAME": "ops",
                "DJANGO_SUPERUSER_PASSWORD": "a-long-first-password",
                "DJANGO_SUPERUSER_EMAIL": "ops@example.com",
            },
            capture_output=True,
            text=True,
        )
        assert made.returncode == 0, made.stderr
        session = requests.Session()
        page = session.get(f"{base}/accounts/login/", timeout=10).text
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token is not None
        signed_in = session.post(
            f"{base}/accounts/login/",
            data={"username": "ops", "password": "a-long-first-password", "csrfmiddlewaretoken": token.group(1)},
            headers={"Referer": f"{base}/accounts/login/"},
            timeout=10,
        )
        assert signed_in.status_code == 200 and signed_in.url == f"{base}/", signed_in.url
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
    with sqlite3.connect(var / "gantry.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM deployer_service").fetchone() == (0,)
        users = [row[0] for row in db.execute("SELECT username FROM auth_user")]
    assert users == ["ops"], "no demo admin with a password someone else knows"


def _wait_ready(base: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"make serve exited:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200 and "beat.1 started" in log.read_text():
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise AssertionError(f"make serve did not answer in {timeout} s:\n{log.read_text()[-3000:]}")
