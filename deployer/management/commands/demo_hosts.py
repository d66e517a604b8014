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
from deployer.demo.hosts import SshdHost
from deployer.demo.watching import LOAD_PER_SECOND, users, watching_of, watching_start


class Command(BaseCommand):
    help = "Run the demo's loopback sshd hosts in the foreground until stopped (make run starts this)."

    def handle(self, *args: Any, **options: Any) -> None:
        hosts = setup.demo_hosts()
        if not all(h.config_path.exists() for h in hosts):
            raise CommandError("the demo hosts are not prepared; run `manage.py demo_setup` first")
        processes: list[subprocess.Popen[bytes]] = []
        extra: list[subprocess.Popen[bytes]] = []  # HAProxy and Prometheus, when the demo watches
        stack = contextlib.ExitStack()
        stopping = False

        def stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            for host in hosts:
                if _stop_stale(host):
                    self.stdout.write(f"stopped the sshd an earlier run left on {host.address}:{host.port}")
                processes.append(host.start())
                self.stdout.write(f"ssh host {host.user}@{host.address}:{host.port} is up", ending="\n")
            watching = watching_of(setup.demo_dir())
            if watching is not None:
                extra.extend(watching_start(watching))
                app_port = setup.demo_ports()["app"]
                health = [f"http://{host.address}:{app_port}/healthz" for host in hosts]
                stack.enter_context(users(watching.site_url, first_up=health))
                self.stdout.write(
                    f"HAProxy {watching.site_url} and Prometheus {watching.prometheus_url} are up; users send "
                    f"{LOAD_PER_SECOND} requests a second through HAProxy once a host runs the app",
                    ending="\n",
                )
            self.stdout.flush()
            said: set[int] = set()
            # A host that dies is a normal day: the demo goes on with the others (its deploys fail there as
            # with a dead host, and the plan page offers to deploy without it); all of them gone ends it.
            while not stopping and any(p.poll() is None for p in processes):
                for index, process in enumerate(processes):
                    if process.poll() is not None and index not in said:
                        said.add(index)
                        host = hosts[index]
                        self.stdout.write(
                            f"ssh host {host.address}:{host.port} stopped (exit {process.returncode}); the demo goes "
                            "on without it: a deploy there fails as with a dead host (the plan page can leave it "
                            "out). Restart `make run` to bring it back.",
                            ending="\n",
                        )
                        self.stdout.flush()
                time.sleep(0.2)
        finally:
            stack.close()
            for process in processes + extra:
                process.terminate()
            for process in processes + extra:
                process.wait(timeout=10)
            for host in hosts:
                for name in ("app", "worker"):
                    _stop_demo_app(host.directory / "srv" / "demo" / "shared" / f"{name}.pid")
        if not stopping:
            raise CommandError("every demo sshd exited; see their messages above")


def _stop_stale(host: SshdHost) -> bool:
    """An sshd an earlier `make run` of this checkout left running (killed without its cleanup) holds the
    host's address: stop it. It is found by its command line naming this host's own sshd_config (its pid file
    does not survive demo_setup), so nothing else is ever signalled."""
    config = str(host.config_path).encode()
    stale = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        # A listening sshd retitles itself ("sshd: /usr/sbin/sshd -D -e -f <config> [listener] ..."): the
        # words are read, not the arguments.
        words = raw.split()
        if words and words[0].rstrip(b":").endswith(b"sshd") and config in words and _orphaned(entry):
            stale.append(int(entry.name))
    for pid in stale:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while stale and time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in stale):
        time.sleep(0.05)
    return bool(stale)


def _orphaned(process: Path) -> bool:
    """Left behind: its parent is no longer the demo_hosts that started it (that one died and the sshd was
    handed to init or a subreaper). A live `make run`'s sshd is never stopped by a second one."""
    try:
        status = (process / "status").read_text()
        ppid = next((line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), "")
        parent = Path(f"/proc/{ppid}/cmdline").read_bytes() if ppid else b""
    except OSError:
        return True  # its parent is gone
    return b"demo_hosts" not in parent


def _stop_demo_app(pidfile: Path) -> None:
    """The demo app outlives its SSH session by design; stop it with the hosts."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    pidfile.unlink(missing_ok=True)
