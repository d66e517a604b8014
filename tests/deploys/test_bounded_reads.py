"""What a host or a builder sends is bounded in size and time (issue 20, item 8): a health URL that streams for
ever or trickles its headers, and an artifact larger than the cap. A real HTTP server in a thread, a real sshd."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fabric import Connection

from deployer.deploys.health import health_wait
from deployer.errors import StepFailed
from deployer.integrations import ssh

pytestmark = pytest.mark.one_backend  # the database backend makes no difference here

LOG = logging.LoggerAdapter(logging.getLogger("tests.bounded"), {"deploy_id": 0, "host": ""})


def serve(answer: bytes, *, trickle: float = 0.0, forever: bool = False) -> Iterator[str]:
    """A server that sends `answer` (a byte every `trickle` s), then, with `forever`, a body without end."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def one(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(4096)
                for byte in answer if trickle else [answer]:
                    conn.sendall(bytes([byte]) if trickle else byte)  # type: ignore[arg-type]
                    time.sleep(trickle)
                while forever and not stop.is_set():
                    conn.sendall(b"x" * 65536)
            except OSError:
                return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=one, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/healthz"
    finally:
        stop.set()
        listener.close()


@pytest.fixture
def endless() -> Iterator[str]:
    yield from serve(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", forever=True)


@pytest.fixture
def trickling() -> Iterator[str]:
    yield from serve(b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"y" * 200 + b"\r\n\r\n", trickle=0.5)


def test_a_health_url_streaming_for_ever_answers_with_its_status(endless: str) -> None:
    started = time.monotonic()
    health_wait(endless, timeout=5, log=LOG)
    assert time.monotonic() - started < 3, "the status is enough: the body is never read"


def test_a_health_url_trickling_its_headers_is_cut_at_the_deadline(trickling: str) -> None:
    started = time.monotonic()
    with pytest.raises(StepFailed, match=r"did not answer HTTP 200 within 2 s; last: no answer within \d s"):
        health_wait(trickling, timeout=2, log=LOG)
    assert time.monotonic() - started < 10, "each probe ends at its deadline, though bytes keep coming"


def test_an_artifact_over_the_cap_is_not_copied_further(conn: Connection, tmp_path: Path) -> None:
    big = tmp_path / "artifact.tar.gz"
    big.write_bytes(b"\0" * (3 * 2**20))
    with pytest.raises(StepFailed, match=r"artifact.tar.gz is larger than 2 MiB; not copied further"):
        ssh.fetch(conn, str(big), tmp_path / "copy", timeout=30, max_bytes=2 * 2**20)
    assert (tmp_path / "copy").stat().st_size <= 2 * 2**20
    assert len(ssh.fetch(conn, str(big), tmp_path / "copy", timeout=30, max_bytes=4 * 2**20)) == 64
