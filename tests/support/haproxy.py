"""A real HAProxy in front of some hosts' demo app, driven through its runtime API socket (tests only)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from deployer.integrations import haproxy
from tests.support.net import free_port
from tests.support.waiting import wait_until


@dataclass
class HAProxy:
    url: str
    socket: str
    backend: str = "app"
    exporter: str = ""  # host:port of HAProxy's own Prometheus exporter (/metrics)


@contextmanager
def haproxy_running(directory: Path, servers: list[str], app_port: int) -> Iterator[HAProxy]:
    """HAProxy balancing `servers` (addresses) on `app_port`; checks every 200 ms; no retries, so a refused
    connection is a failed request (what a client sees). Its Prometheus exporter answers on another port."""
    binary = shutil.which("haproxy", path="/usr/sbin:/usr/bin:/sbin")
    if binary is None:
        pytest.fail("HAProxy is not installed: apt-get install haproxy (make test installs it)")
    port = free_port("127.0.0.1")
    exporter = next(other for other in iter(lambda: free_port("127.0.0.1"), None) if other != port)
    sock = directory / "haproxy.sock"
    lines = "\n".join(f"  server {address} {address}:{app_port}" for address in servers)
    config = directory / "haproxy.cfg"
    config.write_text(
        f"""global
  stats socket {sock} mode 600 level admin
defaults
  mode http
  timeout connect 1s
  timeout client 10s
  timeout server 10s
  retries 0
frontend web
  bind 127.0.0.1:{port}
  default_backend app
frontend exporter
  bind 127.0.0.1:{exporter}
  http-request use-service prometheus-exporter if {{ path /metrics }}
backend app
  option httpchk GET /healthz
  default-server check inter 200 fall 1 rise 1
{lines}
"""
    )
    process = subprocess.Popen([binary, "-db", "-f", str(config)], stderr=subprocess.PIPE)
    wait_until(lambda: sock.exists(), timeout=10)
    try:
        yield HAProxy(f"http://127.0.0.1:{port}", str(sock), exporter=f"127.0.0.1:{exporter}")
    finally:
        process.terminate()
        process.wait(timeout=10)


def all_up(proxy: HAProxy) -> bool:
    """Every server of the proxy's backend is UP (its health checks pass)."""
    return all(s.status == "UP" for s in haproxy.servers(proxy.socket, proxy.backend).values())
