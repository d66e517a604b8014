"""A real Celery worker, in its own process, on the same broker and test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.db import connection

from tests.support.process import Process

BASE_DIR = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """A URL for the test database pytest-django made (not the one in settings)."""
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    user = params["USER"] or "postgres"
    return f"postgres://{user}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}/{params['NAME']}"


class Worker(Process):
    def __init__(self, queues: str = "deploys,sync,notify", env: dict[str, str] | None = None) -> None:
        self.log_path = settings.VAR_DIR / f"worker-{uuid.uuid4().hex[:8]}.log"
        self.queues = queues
        self.extra_env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        env = {
            **os.environ,
            **self.extra_env,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": database_url(),
        }
        command = [sys.executable, "-m", "celery", "-A", "deployer", "worker", "-Q", self.queues, "-c", "2"]
        command += ["-n", f"{self.log_path.stem}@%h", "--loglevel", "INFO", "--without-heartbeat"]
        command += ["--without-gossip", "--without-mingle"]
        self.process = subprocess.Popen(
            command,
            cwd=BASE_DIR,
            env=env,
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so kill() reaches the pool children too
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Celery worker exited:\n{self.log()}")
            if " ready." in self.log():
                return
            time.sleep(0.1)
        raise RuntimeError(f"the Celery worker did not get ready in {timeout} s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once, as a crash or the OOM killer would."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


class Beat(Process):
    """Celery beat, Gantry's scheduler, sending the periodic tasks (reaper, syncs...) to the broker."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.name = f"beat-{uuid.uuid4().hex[:8]}"
        self.log_path = settings.VAR_DIR / f"{self.name}.log"
        self.extra_env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Beat:
        env = {
            **os.environ,
            **self.extra_env,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": database_url(),
        }
        command = [sys.executable, "-m", "celery", "-A", "deployer", "beat", "--loglevel", "INFO"]
        command += ["--schedule", str(settings.VAR_DIR / self.name)]
        self.process = subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT
        )
        return self
