from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from deployer.demo import setup


class Command(BaseCommand):
    help = "Run the demo's loopback sshd hosts in the foreground until stopped (make run starts this)."

    def handle(self, *args: Any, **options: Any) -> None:
        hosts = setup.demo_hosts()
        if not all(h.config_path.exists() for h in hosts):
            raise CommandError("the demo hosts are not prepared; run `manage.py demo_setup` first")
        processes: list[subprocess.Popen[bytes]] = []
        stopping = False

        def stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            for host in hosts:
                processes.append(host.start())
                self.stdout.write(f"ssh host {host.user}@{host.address}:{host.port} is up", ending="\n")
            self.stdout.flush()
            while not stopping and all(p.poll() is None for p in processes):
                time.sleep(0.2)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=10)
            for host in hosts:
                for name in ("app", "worker"):
                    _stop_demo_app(host.directory / "srv" / "demo" / "shared" / f"{name}.pid")
        if not stopping:
            raise CommandError("an sshd exited; see its message above")


def _stop_demo_app(pidfile: Path) -> None:
    """The demo app outlives its SSH session by design; stop it with the hosts."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    pidfile.unlink(missing_ok=True)
