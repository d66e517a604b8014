"""What the fake GitHub and Jenkins servers share: a threaded HTTP server on
loopback that records every request and can be told to fail or hang."""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Route = tuple[str, re.Pattern[str], Callable[..., Response]]


class _QuietServer(ThreadingHTTPServer):
    """A client that gave up (a timeout test) closes the socket mid-answer: that is expected."""

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class Fault:
    """Make requests whose path matches `pattern` (and `method`) fail: answer `status` (e.g. 500)
    instead of serving them, or after serving them (`after`: the work is done, the answer lost),
    or `hang` seconds first. `times` limits how often (None: always)."""

    pattern: str
    status: int | None = None
    hang: float = 0.0
    method: str = ""
    after: bool = False
    times: int | None = None


class FakeServer:
    """Subclasses add routes with `route(method, regex, handler)`; handlers get the Request and the regex groups."""

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        self.httpd = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def route(self, method: str, pattern: str, handler: Callable[..., Response]) -> None:
        self.routes.append((method, re.compile(pattern), handler))

    def fail(
        self,
        pattern: str,
        *,
        status: int | None = None,
        hang: float = 0.0,
        method: str = "",
        after: bool = False,
        times: int | None = None,
    ) -> Fault:
        fault = Fault(pattern, status, hang, method, after, times)
        self.faults.append(fault)
        return fault

    def heal(self) -> None:
        self.faults.clear()

    def _fault_for(self, request: Request) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if (not fault.method or fault.method == request.method) and re.search(fault.pattern, request.path):
                    if fault.times is not None:
                        if fault.times <= 0:
                            continue
                        fault.times -= 1
                    return fault
        return None

    def reset_counters(self) -> None:
        with self.lock:
            self.requests.clear()

    def count(self, method: str = "", path_contains: str = "") -> int:
        with self.lock:
            return sum(
                1
                for r in self.requests
                if (not method or r.method == method) and (not path_contains or path_contains in r.path)
            )

    def dispatch(self, request: Request) -> Response:
        fault = self._fault_for(request)
        if fault and fault.hang:
            time.sleep(fault.hang)
        if fault and fault.status and not fault.after:
            return Response(fault.status, {"message": "Server Error"})
        response = self._route(request)
        if fault and fault.status and fault.after:
            return Response(fault.status, {"message": "Server Error"})
        return response

    def _route(self, request: Request) -> Response:
        for method, pattern, handler in self.routes:
            match = pattern.fullmatch(request.path)
            if method == request.method and match:
                return handler(request, *match.groups())
        return self.not_found(request)

    def not_found(self, request: Request) -> Response:
        return Response(404, {"message": "Not Found"})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes; without this, Nagle's algorithm and the
                # client's delayed ACK add ~40 ms to every keep-alive request.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query={k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                with server.lock:
                    server.requests.append(request)
                response = server.dispatch(request)
                if isinstance(response.body, str):
                    body, content_type = response.body.encode(), "text/html;charset=utf-8"
                elif isinstance(response.body, bytes):  # a file, as Jenkins serves an archived artifact
                    body, content_type = response.body, "application/octet-stream"
                else:
                    body = b"" if response.body is None else json.dumps(response.body).encode()
                    content_type = "application/json; charset=utf-8"
                self.send_response(response.status)
                if response.body is not None:
                    self.send_header("Content-Type", content_type)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
