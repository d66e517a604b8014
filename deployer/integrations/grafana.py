"""Grafana's annotations HTTP API (POST /api/annotations, PATCH /api/annotations/{id}): what the change
timeline sends. Two calls and a JSON body each: `requests` rather than a client library (the Python clients
wrap the whole API, and none is kept up with Grafana's releases).

Plain values in and out. Grafana down, slow, throttling or failing (5xx) raises GrafanaUnavailable (the
outbox tries again later); a request it refuses (4xx: a bad token, no permission, a deleted annotation)
raises GrafanaRefused with Grafana's message (retrying would not help).
"""

from __future__ import annotations

import math
from typing import Any

import requests

TIMEOUT = 10


class GrafanaError(Exception):
    """The call did not do what it asked; the message says why."""


class GrafanaUnavailable(GrafanaError):
    """Try again later: no answer, a timeout, HTTP 429 or 5xx. `retry_after` in seconds when Grafana said."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GrafanaRefused(GrafanaError):
    """Grafana answered 4xx: retrying the same request would be refused again."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def annotation_create(url: str, token: str, *, time_ms: int, time_end_ms: int, tags: list[str], text: str) -> int:
    """A new organisation-wide annotation (a region when the end is after the start); Grafana's id of it."""
    body = {"time": time_ms, "timeEnd": time_end_ms, "tags": tags, "text": text}
    answer = _call("POST", f"{url.rstrip('/')}/api/annotations", token, body)
    annotation_id = answer.get("id")
    if not isinstance(annotation_id, int) or isinstance(annotation_id, bool) or not 0 < annotation_id < 2**63:
        raise GrafanaUnavailable(f"Grafana's answer to POST /api/annotations has no id: {str(answer)[:200]}")
    return annotation_id


def annotation_patch(
    url: str, token: str, annotation_id: int, *, time_ms: int, time_end_ms: int, tags: list[str], text: str
) -> None:
    """Bring annotation `annotation_id` to these values (its end, its outcome tag, its text)."""
    body = {"time": time_ms, "timeEnd": time_end_ms, "tags": tags, "text": text}
    _call("PATCH", f"{url.rstrip('/')}/api/annotations/{int(annotation_id)}", token, body)


def _retry_after(value: str) -> float | None:
    """Seconds from a Retry-After header (a date, or nonsense: None), at most five minutes."""
    try:
        seconds = float(value) if value.isascii() else math.nan
    except ValueError:
        return None
    return min(max(seconds, 0.0), 300.0) if math.isfinite(seconds) else None


def _call(method: str, url: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"Accept": "application/json", "Authorization": f"Bearer {token}"}
    try:
        answer = requests.request(method, url, json=body, headers=headers, timeout=TIMEOUT, allow_redirects=False)
    except requests.RequestException as exc:
        raise GrafanaUnavailable(f"Grafana did not answer ({exc.__class__.__name__})") from exc
    try:
        parsed = answer.json()
    except ValueError:
        parsed = {}
    said = parsed if isinstance(parsed, dict) else {}
    message = str(said.get("message") or answer.reason or "")[:300]
    if answer.status_code == 429 or answer.status_code >= 500:
        raise GrafanaUnavailable(
            f"Grafana answered HTTP {answer.status_code}: {message}",
            retry_after=_retry_after(answer.headers.get("Retry-After", "")),
        )
    if answer.status_code >= 300:
        raise GrafanaRefused(f"Grafana refused {method} (HTTP {answer.status_code}): {message}", answer.status_code)
    return said
