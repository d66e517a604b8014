"""Health checks of freshly restarted hosts: an URL polled until HTTP 200, or a command until it exits 0."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import requests

from deployer.apitests.network import deadline, guarded_session
from deployer.errors import StepFailed

# Poll quickly at first (most services come up in well under a second), then back off.
FIRST_POLL_SECONDS = 0.1
MAX_POLL_SECONDS = 1.0
REQUEST_TIMEOUT = 5.0


def health_wait(url: str, *, timeout: int, log: logging.LoggerAdapter[logging.Logger], label: str = "") -> None:
    """Poll `url` until it answers HTTP 200; StepFailed naming the last answer after `timeout` s."""
    what = f"{label}health check {url}"
    _poll(lambda seconds: _probe(url, seconds), what, "answer HTTP 200", timeout=timeout, log=log)


def health_command_wait(
    probe: Callable[[float], str], *, what: str, timeout: int, log: logging.LoggerAdapter[logging.Logger]
) -> None:
    """Run `probe` (a command on the host: "" when it exited 0, else what it said) until it passes;
    StepFailed naming its last answer after `timeout` s."""
    _poll(probe, what, "exit 0", timeout=timeout, log=log)


def _poll(
    probe: Callable[[float], str], what: str, goal: str, *, timeout: int, log: logging.LoggerAdapter[logging.Logger]
) -> None:
    """Until `probe` (given the seconds it may take) answers "HTTP 200" or "" (healthy), or `timeout` s pass."""
    deadline = time.monotonic() + timeout
    last = ""
    pause = FIRST_POLL_SECONDS
    while True:
        answer = probe(min(REQUEST_TIMEOUT, max(deadline - time.monotonic(), 0.1)))
        if answer in {"HTTP 200", ""}:
            log.info("%s passed%s", what, f" ({answer})" if answer else "")
            return
        if answer != last:
            log.info("%s: %s; waiting up to %d s", what, answer, timeout)
            last = answer
        if time.monotonic() >= deadline:
            raise StepFailed(f"{what} did not {goal} within {timeout} s; last: {answer}")
        time.sleep(pause)
        pause = min(pause * 1.5, MAX_POLL_SECONDS)


def _probe(url: str, timeout: float) -> str:
    """The answer's status, within `timeout` s in all: the body is never read (a health URL that streams
    for ever, or trickles its headers, costs one probe's time and no memory)."""
    session = guarded_session()
    with deadline(session, timeout) as cut:
        try:
            with session.get(url, timeout=timeout, allow_redirects=False, stream=True) as response:
                return f"HTTP {response.status_code}"
        except requests.ConnectionError:
            if cut():
                return f"no answer within {timeout:.0f} s"
            return "no answer (connection refused or reset)"
        except requests.Timeout:
            return f"no answer within {timeout:.0f} s"
        except requests.RequestException as exc:
            return f"an error ({exc.__class__.__name__})"
