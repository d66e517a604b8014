"""What a failing health check says: a redirect names where it points (a URL missing its trailing slash
answers 301, and the check follows no redirect). A real HTTP server in a thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deployer.deploys.health import health_wait
from deployer.errors import StepFailed

pytestmark = pytest.mark.one_backend  # the database backend makes no difference here

LOG = logging.LoggerAdapter(logging.getLogger("tests.health"), {"deploy_id": 0, "host": ""})


OTHER = {"/away": "https://attacker.example/login", "/broken": "http://[::1"}  # what an application may send


class Slash(BaseHTTPRequestHandler):
    """Django's APPEND_SLASH, as a real application answers /status."""

    def do_GET(self) -> None:
        if self.path in OTHER:
            self.send_response(302)
            self.send_header("Location", OTHER[self.path])
        elif self.path.endswith("/"):
            self.send_response(200)
        else:
            self.send_response(301)
            self.send_header("Location", self.path + "/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def app() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Slash)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_redirect_says_where_it_points(app: str) -> None:
    with pytest.raises(StepFailed) as caught:
        health_wait(f"{app}/status", timeout=1, log=LOG)
    assert str(caught.value).endswith(
        f"last: HTTP 301, a redirect to {app}/status/ (did you mean {app}/status/? a health check follows no redirect)"
    )
    health_wait(f"{app}/status/", timeout=1, log=LOG)


def test_a_redirect_elsewhere_or_unreadable_is_said_without_suggesting_it(app: str) -> None:
    with pytest.raises(StepFailed) as caught:
        health_wait(f"{app}/away", timeout=1, log=LOG)
    said = str(caught.value)
    assert "HTTP 302, a redirect to another origin" in said and "attacker" not in said, said
    with pytest.raises(StepFailed, match=r"last: an error \(ValueError\)$"):  # a failed check, not a crash
        health_wait(f"{app}/broken", timeout=1, log=LOG)
