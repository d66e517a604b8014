"""A TCP listener that records every byte anyone sends it: the place that must receive nothing."""

from __future__ import annotations

import contextlib
import select
import socket
import threading


class Listener:
    def __init__(self, address: str = "127.0.0.1", port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(16)
        self.address = address
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.received = b""
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}"

    def start(self) -> Listener:
        self._thread.start()
        return self

    def _serve(self) -> None:
        # Never block in accept(): closing a socket another thread is accepting on lets that thread accept
        # on whatever socket reuses the file descriptor next (seen: it answered the fake GitHub's clients).
        while not self._stopped.is_set():
            ready, _, _ = select.select([self.sock], [], [], 0.05)
            if not ready:
                continue
            conn, _ = self.sock.accept()
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(5)
            while not self._stopped.is_set() and (chunk := conn.recv(65536)):
                with self._lock:
                    self.received += chunk
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")

    def stop(self) -> None:
        """Stop accepting, wait for the accepting thread, then close (in that order: see _serve)."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.sock.close()
