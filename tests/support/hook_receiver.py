"""A webhook receiver as a team would write one: a real HTTP server that checks each request's signature and
timestamp as Gantry's docs say (notify/hooks_out.py), keeps what it took, and can be told to answer 503 to
the first tries of an event (so retries deliver out of order)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_AGE = 300


class HookReceiver:
    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.taken: list[dict[str, Any]] = []  # in arrival order
        self.refused: list[str] = []  # why a request was refused (bad signature, stale timestamp)
        self.fail_first: dict[str, int] = {}  # event -> how many tries still answered 503
        self.deliveries: dict[str, int] = {}  # X-Gantry-Delivery -> tries seen
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(receiver.take(dict(self.headers.items()), body))
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/gantry"

    def start(self) -> HookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def take(self, headers: dict[str, str], body: bytes) -> int:
        stamp = headers.get("X-Gantry-Timestamp", "")
        expected = "sha256=" + hmac.new(self.secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        with self.lock:
            if not hmac.compare_digest(expected, headers.get("X-Gantry-Signature", "")):
                self.refused.append("bad signature")
                return 401
            if not stamp.isdigit() or abs(time.time() - int(stamp)) > MAX_AGE:
                self.refused.append("stale timestamp")
                return 401
            event = json.loads(body)
            delivery = headers["X-Gantry-Delivery"]
            assert event["delivery"] == delivery and event["event"] == headers["X-Gantry-Event"]
            self.deliveries[delivery] = self.deliveries.get(delivery, 0) + 1
            if self.fail_first.get(event["event"], 0) > 0:
                self.fail_first[event["event"]] -= 1
                return 503
            if self.deliveries[delivery] > 1 and any(e["delivery"] == delivery for e in self.taken):
                return 200  # a duplicate: taken once
            self.taken.append(event)
            return 200

    def events(self, deploy_id: int) -> list[dict[str, Any]]:
        """A deploy's events as the receiver rebuilds their order: by sequence, whatever order they came in."""
        with self.lock:
            mine = [e for e in self.taken if e["deploy"] and e["deploy"]["id"] == deploy_id]
        return sorted(mine, key=lambda e: e["sequence"])
