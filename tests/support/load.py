"""Traffic for tests that need users: threads sending GET requests to some URLs until stopped, counting
what was sent and what failed (as a client sees it: an HTTP error or no answer)."""

from __future__ import annotations

import threading

import requests


class Load:
    def __init__(self, urls: list[str], *, per_url: int = 1, pause: float = 0.0) -> None:
        """`per_url` threads for each URL; each waits `pause` seconds between its requests (0: none)."""
        self.pause = pause
        self.sent = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(url,), daemon=True) for url in urls for _ in range(per_url)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _run(self, url: str) -> None:
        session = requests.Session()
        while not self._stop.wait(self.pause):
            try:
                answer = session.get(url, timeout=5)
                failure = "" if answer.status_code == 200 else f"HTTP {answer.status_code}"
            except requests.RequestException as exc:
                failure = exc.__class__.__name__
            with self._lock:
                self.sent += 1
                if failure:
                    self.failures.append(failure)
