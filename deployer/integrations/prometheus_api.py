"""Prometheus' HTTP API, instant queries only (https://prometheus.io/docs/prometheus/latest/querying/api/):
what a canary analysis asks. A small `requests` call rather than a client library: the one maintained
client for Python (prometheus-api-client) brings pandas and numpy for a GET and a JSON document.

Plain values in and out. Prometheus down, slow, refusing the query or answering something else all raise
PrometheusError: the analysis treats that as inconclusive, never as a value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

MAX_SERIES = 1000  # an analysis query sums over hosts: more series than this is a query mistake


class PrometheusError(Exception):
    """The query got no usable answer; the message says why (for the deploy's log and page)."""


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float  # NaN and ±Inf as Prometheus sent them: the caller decides what they mean


def query(url: str, promql: str, *, at: float, timeout: float) -> list[Sample]:
    """The instant vector (or scalar) of `promql` at unix time `at`: one Sample per series, [] for none."""
    try:
        answer = requests.post(
            f"{url.rstrip('/')}/api/v1/query",
            data={"query": promql, "time": f"{at:.3f}", "timeout": f"{max(1, int(timeout))}s"},
            timeout=timeout,
        )
        body: dict[str, Any] = answer.json()
    except requests.RequestException as exc:
        raise PrometheusError(f"Prometheus at {shown(url)} did not answer: {exc.__class__.__name__}") from exc
    except ValueError as exc:
        raise PrometheusError(f"Prometheus at {shown(url)} answered HTTP {answer.status_code}, not JSON") from exc
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error", "") if isinstance(body, dict) else ""
        raise PrometheusError(f"Prometheus refused the query (HTTP {answer.status_code}): {str(error)[:300]}")
    return _samples(body.get("data"))


def shown(url: str) -> str:
    """The server's URL as messages may show it: credentials in it (user:password@) are never repeated."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _samples(data: Any) -> list[Sample]:
    if not isinstance(data, dict):
        raise PrometheusError("Prometheus' answer has no data")
    kind, result = data.get("resultType"), data.get("result") or []
    try:
        if kind == "scalar" and isinstance(result, list):
            return [Sample({}, _number(result[1]))]
        if kind == "vector" and isinstance(result, list):
            if len(result) > MAX_SERIES:
                raise PrometheusError(f"the query returned {len(result)} series; sum it (e.g. sum(...))")
            return [Sample(dict(item.get("metric") or {}), _number(item["value"][1])) for item in result]
    except (KeyError, IndexError, TypeError) as exc:
        raise PrometheusError(f"Prometheus' answer is not a {kind}: {exc!r}") from exc
    raise PrometheusError(f"the query returned a {kind}, not an instant vector: query one value per group")


def _number(text: Any) -> float:
    try:
        return float(str(text))  # "NaN", "+Inf" included
    except ValueError:
        return math.nan
