"""What lets the demo's deploys watch production: where HAProxy and Prometheus are installed, HAProxy in front
of the demo hosts (its runtime API lets Gantry drain hosts and lower the canary's share; its own exporter
gives the built-in error_rate), Prometheus scraping that exporter every 2 s, and a small load generator
sending users' requests. `manage.py demo_setup` writes their configuration and the catalog's analysis;
`manage.py demo_hosts` (make run) runs them beside the sshd hosts."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

LOAD_PER_SECOND = 20  # what the demo's "users" send through HAProxy
FIRST_PORTS = {"lb": 8090, "exporter": 8404, "prometheus": 9490}


@dataclass(frozen=True)
class Watching:
    directory: Path
    lb_port: int
    exporter_port: int
    prometheus_port: int

    @property
    def socket(self) -> Path:
        return self.directory / "haproxy.sock"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def site_url(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}/"


def binaries() -> tuple[str, str] | None:
    """HAProxy's and Prometheus' programs, when both are installed (the demo watches only then)."""
    haproxy = shutil.which("haproxy", path="/usr/sbin:/usr/bin:/sbin:/usr/local/bin")
    prometheus = shutil.which("prometheus", path="/usr/bin:/usr/local/bin")
    return (haproxy, prometheus) if haproxy and prometheus else None


def watching_of(directory: Path) -> Watching | None:
    """The demo's watching as demo_setup configured it (None: not configured, or the programs are gone)."""
    saved = directory / "watching.json"
    if binaries() is None or not saved.exists():
        return None
    ports = json.loads(saved.read_text())
    return Watching(directory, int(ports["lb"]), int(ports["exporter"]), int(ports["prometheus"]))


def watching_configure(directory: Path, servers: list[str], app_port: int, ports: dict[str, int]) -> Watching:
    """Write HAProxy's and Prometheus' configuration for the demo hosts at `servers` (addresses)."""
    directory.mkdir(parents=True, exist_ok=True)
    found = Watching(directory, ports["lb"], ports["exporter"], ports["prometheus"])
    lines = "\n".join(f"  server {address} {address}:{app_port}" for address in servers)
    (directory / "haproxy.cfg").write_text(
        f"""global
  stats socket {found.socket} mode 600 level admin
defaults
  mode http
  timeout connect 1s
  timeout client 10s
  timeout server 10s
frontend demo
  bind 127.0.0.1:{found.lb_port}
  default_backend app
frontend exporter
  bind 127.0.0.1:{found.exporter_port}
  http-request use-service prometheus-exporter if {{ path /metrics }}
backend app
  option httpchk GET /healthz
  default-server check inter 1s fall 2 rise 1
{lines}
"""
    )
    (directory / "prometheus.yml").write_text(
        "global: {scrape_interval: 2s, evaluation_interval: 2s}\n"
        "scrape_configs:\n  - job_name: haproxy\n"
        f'    static_configs: [{{targets: ["127.0.0.1:{found.exporter_port}"]}}]\n'
    )
    (directory / "watching.json").write_text(json.dumps(ports))
    # The workers' Procfile line reads it: GANTRY_PROMETHEUS=demo=<this>.
    (directory / "prometheus.url").write_text(found.prometheus_url + "\n")
    return found


def watching_start(found: Watching) -> list[subprocess.Popen[bytes]]:
    """HAProxy and Prometheus, started (stop them with the returned processes)."""
    programs = binaries()
    assert programs is not None
    haproxy, prometheus = programs
    found.socket.unlink(missing_ok=True)
    log = (found.directory / "watching.log").open("ab")
    started = [
        subprocess.Popen([haproxy, "-db", "-f", str(found.directory / "haproxy.cfg")], stdout=log, stderr=log),
        subprocess.Popen(
            [
                prometheus,
                f"--config.file={found.directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={found.directory / 'prometheus-data'}",
                "--storage.tsdb.retention.time=2d",
                f"--web.listen-address=127.0.0.1:{found.prometheus_port}",
            ],
            stdout=log,
            stderr=log,
        ),
    ]
    deadline = time.monotonic() + 15
    while not found.socket.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return started


@contextlib.contextmanager
def users(url: str, per_second: int = LOAD_PER_SECOND, *, first_up: Sequence[str] = ()) -> Iterator[None]:
    """Requests to `url` at about `per_second`, in a thread, while the block runs (failures are the point:
    they are what the canary analysis sees). Users arrive once one of `first_up` (the hosts' health URLs,
    asked directly, not through HAProxy) answers: before the first deploy nothing runs, and a day of 503s
    would spend the demo SLO's budget before anyone deployed."""
    stop = threading.Event()

    def send() -> None:
        session = requests.Session()
        while first_up and not stop.wait(2) and not any(_answers(session, health) for health in first_up):
            pass
        while not stop.wait(1 / per_second):
            with contextlib.suppress(requests.RequestException):
                session.get(url, timeout=2)

    thread = threading.Thread(target=send, name="demo-users", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def _answers(session: requests.Session, url: str) -> bool:
    try:
        return session.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def analysis_yaml(name: str = "demo") -> str:
    """The test environment's analysis in the demo catalog: HAProxy's own error rate, canary against the
    other host, short enough to watch."""
    return (
        "        # The first batch is a canary, judged by HAProxy's own error rate against the other host.\n"
        f"        analysis: {{prometheus: {name}, traffic: 25, bake: 4, window: 20s, on_inconclusive: continue,\n"
        "                   metrics: [{builtin: error_rate, interval: 4, count: 3, min_sample: 15}]}\n"
    )


def slo_yaml(name: str = "demo") -> str:
    """The demo service's SLO over HAProxy's own counters: 99 % of requests answered without a 5xx over a
    day, shown on the service page, the matrix and the plan (not a gate: the demo is for trying things)."""
    responses = 'haproxy_backend_http_responses_total{proxy="app"'
    return (
        "    # Its SLO, read from HAProxy's counters every minute (shown only: gate: true would stop deploys).\n"
        f"    slo:\n      prometheus: {name}\n      objective: 99\n      window: 1d\n"
        f'      good: sum(increase({responses},code!="5xx"}}[{{{{range}}}}]))\n'
        f"      total: sum(increase({responses}}}[{{{{range}}}}]))\n"
    )
