"""The catalog's `analysis:` key (deploys/analysis.py runs it): the first batch of a deploy is a canary,
judged by Prometheus metrics against the hosts still on the old release, measured over the same windows.
Names and shape follow Argo Rollouts' AnalysisTemplate (interval, count, failure_limit, inconclusive_limit,
dry_run), so people who know it recognise them. The Prometheus server is named here and defined in
Gantry's settings (GANTRY_PROMETHEUS): a catalog commit cannot send queries, or credentials, elsewhere."""

from __future__ import annotations

import string
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from deployer.catalog.fields import Name, Spec
from deployer.lib.conditions import ConditionError, condition_check

PLACEHOLDERS = ("{{service}}", "{{environment}}", "{{hosts}}", "{{sha}}", "{{release}}")


def valid_condition(value: str) -> str:
    try:
        condition_check(value)
    except ConditionError as exc:
        raise ValueError(str(exc)) from None
    return value


def valid_query(value: str) -> str:
    if "{{hosts}}" not in value:
        raise ValueError('the query must select the hosts judged: put instance=~"{{hosts}}" in its selector')
    if any(c in value for c in "\r\0"):
        raise ValueError("a query is text (no NUL or carriage return)")
    return value


def valid_instance(value: str) -> str:
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError:
        fields = {"?"}
    if not fields or not fields <= {"address", "lb_server"}:
        raise ValueError('the instance label of a host, from {address} (e.g. "{address}:9100") or {lb_server}')
    return value


Query = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(valid_query)]


class MetricSpec(Spec):
    name: Name = Field(description="what it measures, e.g. error_rate (shown on the deploy page and in Slack)")
    query: Query = Field(
        description="PromQL giving one value for the hosts in {{hosts}} (a regex of their instance labels), e.g. "
        'sum(rate(http_requests_total{code=~"5..",instance=~"{{hosts}}"}[1m])) / '
        'sum(rate(http_requests_total{instance=~"{{hosts}}"}[1m]))'
    )
    condition: Annotated[str, AfterValidator(valid_condition)] = Field(
        description="when a measurement passes: absolute (result < 0.01) or against the hosts on the old release "
        "(canary <= baseline * 1.5 + 0.001)"
    )
    sample: Query | None = Field(
        default=None,
        description="PromQL counting what the value stands on (e.g. requests over the same window), per group",
    )
    min_sample: float = Field(
        default=0, ge=0, description="below this sample a measurement is inconclusive, never a pass"
    )
    interval: int = Field(default=10, ge=1, le=600, description="seconds between measurements")
    count: int = Field(default=3, ge=1, le=100, description="measurements taken")
    failure_limit: int = Field(default=0, ge=0, description="failed measurements allowed before the metric fails")
    inconclusive_limit: int = Field(
        default=0, ge=0, description="inconclusive measurements allowed before the metric is inconclusive"
    )
    dry_run: bool = Field(default=False, description="measure and show, never decide")


class AnalysisSpec(Spec):
    prometheus: Name = Field(description="a Prometheus server named in Gantry's settings (GANTRY_PROMETHEUS)")
    canary: int = Field(default=1, ge=1, description="hosts in the first batch: the canary")
    instance: Annotated[str, Field(max_length=200), AfterValidator(valid_instance)] = Field(
        default="{address}", description='a host\'s instance label in Prometheus, e.g. "{address}:9100"'
    )
    bake: int = Field(default=0, ge=0, le=3600, description="seconds after the canary is live before measuring")
    on_inconclusive: Literal["pause", "continue"] | None = Field(
        default=None,
        description="pause for a person (the default in production) or continue on health checks alone",
    )
    metrics: list[MetricSpec] = Field(min_length=1, max_length=20, description="what the canary is judged by")
