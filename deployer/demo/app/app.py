"""Gantry's demo service: answers with the release it runs. Standard library only."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
# What /metrics tells Prometheus (a canary analysis reads it): requests by status code, and their time.
COUNTS: dict[int, int] = {}
SECONDS = [0.0]
LOCK = threading.Lock()


def knob(name: str) -> float:
    """A release may ship ERROR_RATE (a share of / answered 500) or SLOW_MS (added to every /): for trying
    out a canary analysis with a release that is bad only under traffic."""
    path = HERE / name
    try:
        return float(path.read_text().strip()) if path.exists() else 0.0
    except ValueError:
        return 0.0


def release() -> dict[str, str]:
    revision = HERE / "REVISION"
    return {
        "sha": revision.read_text().strip() if revision.exists() else "unknown",
        "ref": os.environ.get("GANTRY_REF", ""),
        "greeting": (HERE / "greeting.txt").read_text().strip(),
        "schema": schema(),
    }


def schema() -> str:
    """The migrations applied to the database named in the config (shared/.env), if there is one."""
    path = os.environ.get("DATABASE_PATH", "")
    if not path or not os.path.exists(path):
        return "no database"
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            names = [row[0] for row in connection.execute("SELECT name FROM applied ORDER BY name")]
    except sqlite3.Error as exc:
        return f"unreadable ({exc})"
    return ", ".join(names) or "empty"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.started = time.monotonic()
        if self.path == "/healthz":
            # A release that ships an UNHEALTHY file fails its health check (for trying out failures).
            healthy = not (HERE / "UNHEALTHY").exists()
            self.answer(200 if healthy else 500, "text/plain", b"ok\n" if healthy else b"unhealthy\n")
        elif self.path == "/version":
            self.answer(200, "application/json", json.dumps(release()).encode())
        elif self.path == "/metrics":
            self.answer(200, "text/plain; version=0.0.4", metrics().encode())
        elif self.path == "/" and self.failing():
            self.answer(500, "text/plain", b"this release fails some requests (ERROR_RATE)\n")
        elif self.path == "/":
            time.sleep(knob("SLOW_MS") / 1000)
            info = release()
            page = (
                f"<h1>{info['greeting']}</h1><p>release <code>{info['sha']}</code> ({info['ref']})</p>"
                f"<p>schema: {info['schema']}</p>\n"
            )
            self.answer(200, "text/html; charset=utf-8", page.encode())
        else:
            self.answer(404, "text/plain", b"not found\n")

    def failing(self) -> bool:
        """Every request past each whole multiple of ERROR_RATE fails: exactly that share, no randomness."""
        rate = knob("ERROR_RATE")
        with LOCK:
            done = sum(COUNTS.values())
        return rate > 0 and int((done + 1) * rate) > int(done * rate)

    def answer(self, status: int, content_type: str, body: bytes) -> None:
        if self.path not in ("/metrics", "/healthz"):
            with LOCK:
                COUNTS[status] = COUNTS.get(status, 0) + 1
                SECONDS[0] += time.monotonic() - self.started
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def metrics() -> str:
    with LOCK:
        counts, seconds = dict(COUNTS), SECONDS[0]
    lines = ["# TYPE demo_requests_total counter"]
    lines += [f'demo_requests_total{{code="{code}"}} {count}' for code, count in sorted(counts.items())]
    lines += ["# TYPE demo_request_seconds summary", f"demo_request_seconds_sum {seconds}"]
    lines += [f"demo_request_seconds_count {sum(counts.values())}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args()
    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
