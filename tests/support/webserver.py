"""Gantry's web app under gunicorn, in its own process, on the test database: for tests that need a real server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid

from django.conf import settings

from tests.support.process import Process
from tests.support.worker import BASE_DIR, database_url


class WebServer(Process):
    def __init__(
        self, address: str = "127.0.0.1", workers: int = 2, threads: int = 8, env: dict[str, str] | None = None
    ) -> None:
        self.extra_env = env or {}
        self.address = address
        self.workers = workers
        self.threads = threads
        self.log_path = settings.VAR_DIR / f"web-{uuid.uuid4().hex[:8]}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def start(self, timeout: float = 30.0) -> WebServer:
        with socket.socket() as probe:
            probe.bind((self.address, 0))
            self.port = probe.getsockname()[1]
        env = {
            **os.environ,
            **self.extra_env,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": database_url(),
        }
        command = [sys.executable, "-m", "gunicorn", "deployer.wsgi", "--bind", f"{self.address}:{self.port}"]
        command += ["--workers", str(self.workers), "--threads", str(self.threads), "--log-level", "warning"]
        self.process = subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.log()}")
            try:
                socket.create_connection((self.address, self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not listen within {timeout} s:\n{self.log()}")
