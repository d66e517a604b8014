"""`make run` serves the web with a production server (gunicorn, threads; WhiteNoise for static files): the
Procfile's own `web` line, run as honcho runs it, answers 50 requests at once without a reset."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.support.net import free_port
from tests.support.worker import BASE_DIR, database_url

pytestmark = pytest.mark.one_backend  # the database backend makes no difference here


def procfile_command(name: str) -> str:
    for line in (BASE_DIR / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.removeprefix(f"{name}:").strip()
    raise AssertionError(f"the Procfile has no {name} line")


def test_the_procfiles_web_server_answers_fifty_requests_at_once(transactional_db: None, tmp_path: Path) -> None:
    port = free_port("127.0.0.1")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "GANTRY_PORT": str(port),
    }
    log = tmp_path / "web.log"
    web = subprocess.Popen(
        ["sh", "-c", procfile_command("web")],
        cwd=BASE_DIR,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_listening(port, web, log)
        base = f"http://127.0.0.1:{port}"
        answers: list[int] = []
        errors: list[str] = []
        start = threading.Barrier(50)

        def ask(path: str) -> None:
            start.wait()
            try:
                answers.append(requests.get(base + path, allow_redirects=False, timeout=30).status_code)
            except requests.RequestException as exc:
                errors.append(f"{path}: {exc}")

        paths = ["/healthz", "/api/v1/services/", "/", "/static/css/gantry.css", "/static/vendor/htmx.min.js"] * 10
        threads = [threading.Thread(target=ask, args=(path,)) for path in paths]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=20)

    assert errors == [], "no connection was reset or refused"
    assert sorted(answers) == sorted([200] * 30 + [302] * 10 + [401] * 10), log.read_text()[-2000:]


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the web server exited:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the web server did not listen within {timeout} s:\n{log.read_text()}")
