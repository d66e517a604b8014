"""Health checks of freshly restarted hosts: an URL polled until HTTP 200, or a command until it exits 0."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

import requests

from deployer.apitests.network import deadline, guarded_session
from deployer.errors import StepFailed

# Poll quickly at first (most services come up in well under a second), then back off.
FIRST_POLL_SECONDS = 0.1
MAX_POLL_SECONDS = 1.0
REQUEST_TIMEOUT = 5.0
STEADY_POLL_SECONDS = 0.5  # how often a check is asked again during healthy_for


def health_wait(
    url: str, *, timeout: int, log: logging.LoggerAdapter[logging.Logger], label: str = "", healthy_for: int = 0
) -> None:
    """Poll `url` until it answers HTTP 200 (and keeps answering it for `healthy_for` s); StepFailed naming
    the last answer after `timeout` s."""
    what = f"{label}health check {url}"
    _poll(lambda seconds: _probe(url, seconds), what, "answer HTTP 200", timeout=timeout, log=log)
    _steady(lambda seconds: _probe(url, seconds), what, healthy_for, log=log)


def health_command_wait(
    probe: Callable[[float], str],
    *,
    what: str,
    timeout: int,
    log: logging.LoggerAdapter[logging.Logger],
    healthy_for: int = 0,
) -> None:
    """Run `probe` (a command on the host: "" when it exited 0, else what it said) until it passes, and while
    `healthy_for` s pass; StepFailed naming its last answer after `timeout` s."""
    _poll(probe, what, "exit 0", timeout=timeout, log=log)
    _steady(probe, what, healthy_for, log=log)


def _steady(
    probe: Callable[[float], str], what: str, seconds: int, *, log: logging.LoggerAdapter[logging.Logger]
) -> None:
    """After a first pass: the check must keep passing for `seconds` (a worker that crashes a second after
    it starts has a pid at first); StepFailed at the first answer that is not healthy."""
    if seconds <= 0:
        return
    started = time.monotonic()
    until = started + seconds
    while (now := time.monotonic()) < until:
        time.sleep(min(STEADY_POLL_SECONDS, until - now))
        answer = probe(REQUEST_TIMEOUT)  # the window decides whether to ask again, not how long an answer takes
        if answer not in {"HTTP 200", ""}:
            raise StepFailed(
                f"{what} passed, then failed {time.monotonic() - started:.1f} s later (healthy_for: {seconds}): "
                f"{answer}"
            )
    log.info("%s kept passing for %d s (healthy_for)", what, seconds)


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
                return _said(url, response)
        except requests.ConnectionError:
            if cut():
                return f"no answer within {timeout:.0f} s"
            return "no answer (connection refused or reset)"
        except requests.Timeout:
            return f"no answer within {timeout:.0f} s"
        except (requests.RequestException, ValueError) as exc:  # ValueError: a header requests cannot parse
            return f"an error ({exc.__class__.__name__})"


def _said(url: str, response: requests.Response) -> str:
    """The answer as the log and a failure reason say it; a redirect says where it points (a URL missing
    its trailing slash answers 301: the check follows no redirect, so the catalog should name the target)."""
    status = f"HTTP {response.status_code}"
    location = response.headers.get("Location", "")
    if not response.is_redirect or not location:
        return status
    try:
        target = urljoin(url, location)
    except ValueError:  # the application's header: anything (an unclosed "[" makes urljoin raise)
        target = location
    target = "".join(ch for ch in target if ch.isprintable())[:300]
    if _origin(target) != _origin(url):  # never suggest another site's URL for the catalog
        return f"{status}, a redirect to another origin (a health check follows no redirect)"
    return f"{status}, a redirect to {target} (did you mean {target}? a health check follows no redirect)"


def _origin(url: str) -> tuple[str, str]:
    try:
        parts = urlsplit(url)
        return parts.scheme, parts.netloc
    except ValueError:
        return "", url
