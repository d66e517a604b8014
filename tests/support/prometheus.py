"""A real Prometheus (Debian's package) for the canary analysis tests: it scrapes the demo app on each test
host every second, on loopback, and keeps its data in the test's own directory."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

# Its own loopback address: the port the worker is told at the start of the session stays free until a test
# starts Prometheus there (other servers take free ports on 127.0.0.1).
ADDRESS = "127.0.0.90"


@contextmanager
def prometheus_running(directory: Path, port: int, targets: list[str]) -> Iterator[str]:
    """Prometheus on ADDRESS:`port` scraping `targets` (host:port) every second; yields its URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("Prometheus is not installed: apt-get install prometheus (make test installs it)")
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "prometheus.yml"
    listed = ", ".join(f'"{target}"' for target in targets)
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs:\n  - job_name: app\n    static_configs: [{{targets: [{listed}]}}]\n"
    )
    log = directory / "prometheus.log"
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address={ADDRESS}:{port}",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://{ADDRESS}:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _ready(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Prometheus did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/-/ready", timeout=1).ok
    except requests.RequestException:
        return False


def backfill(directory: Path, openmetrics: str) -> None:
    """Past samples written straight into the data directory `prometheus_running(directory, ...)` opens, with
    Prometheus' own `promtool tsdb create-blocks-from openmetrics`: hours of history without waiting for it."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: apt-get install prometheus (make test installs it)")
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "backfill.om"
    source.write_text(openmetrics)
    done = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(directory / "data")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
