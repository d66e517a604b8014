"""What the canary benchmarks share: a free port, and a real Prometheus (Debian's) scraping some targets."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


def free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def prometheus_start(work: Path, port: int, targets: list[str]) -> subprocess.Popen[bytes]:
    """Prometheus on 127.0.0.1:`port` scraping `targets` every second, its data in `work`; ready when returned."""
    listed = ", ".join(f'"{t}"' for t in targets)
    (work / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\n"
        f"scrape_configs:\n  - job_name: app\n    static_configs: [{{targets: [{listed}]}}]\n"
    )
    process = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).ok:
                return process
        except requests.RequestException:
            pass
        time.sleep(0.1)
    sys.exit("Prometheus did not start")
