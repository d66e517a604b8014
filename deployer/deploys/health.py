"""Health checks of freshly restarted hosts (post-deploy API tests come later)."""

from __future__ import annotations

import logging
import time

import requests

from deployer.errors import StepFailed

# Poll quickly at first (most services come up in well under a second), then back off.
FIRST_POLL_SECONDS = 0.1
MAX_POLL_SECONDS = 1.0
REQUEST_TIMEOUT = 5.0


def health_wait(url: str, *, timeout: int, log: logging.LoggerAdapter[logging.Logger]) -> None:
    """Poll `url` until it answers HTTP 200; StepFailed naming the last answer after `timeout` s."""
    deadline = time.monotonic() + timeout
    last = ""
    pause = FIRST_POLL_SECONDS
    while True:
        answer = _probe(url, min(REQUEST_TIMEOUT, max(deadline - time.monotonic(), 0.1)))
        if answer == "HTTP 200":
            log.info("health check %s answered HTTP 200", url)
            return
        if answer != last:
            log.info("health check %s: %s; waiting up to %d s", url, answer, timeout)
            last = answer
        if time.monotonic() >= deadline:
            raise StepFailed(f"health check {url} did not answer HTTP 200 within {timeout} s; last: {answer}")
        time.sleep(pause)
        pause = min(pause * 1.5, MAX_POLL_SECONDS)


def _probe(url: str, timeout: float) -> str:
    try:
        response = requests.get(url, timeout=timeout, allow_redirects=False)
    except requests.ConnectionError:
        return "no answer (connection refused or reset)"
    except requests.Timeout:
        return f"no answer within {timeout:.0f} s"
    except requests.RequestException as exc:
        return f"an error ({exc.__class__.__name__})"
    return f"HTTP {response.status_code}"
