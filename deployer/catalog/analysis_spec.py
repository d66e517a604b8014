"""The catalog's `analysis:` key (deploys/analysis.py runs it): the first batch of a deploy is a canary,
judged by Prometheus metrics against the hosts still on the old release, measured over the same windows.
Names and shape follow Argo Rollouts' AnalysisTemplate (interval, count, failure_limit, inconclusive_limit,
dry_run), so people who know it recognise them. The Prometheus server is named here and defined in
Gantry's settings (GANTRY_PROMETHEUS): a catalog commit cannot send queries, or credentials, elsewhere."""

from __future__ import annotations

import string
from typing import Annotated, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag

from deployer.catalog.fields import Name, Spec, valid_batch_size
from deployer.lib.conditions import ConditionError, condition_check

PLACEHOLDERS = ("{{service}}", "{{environment}}", "{{hosts}}", "{{servers}}", "{{backend}}", "{{window}}", "{{sha}}")


def valid_condition(value: str) -> str:
    try:
        condition_check(value)
    except ConditionError as exc:
        raise ValueError(str(exc)) from None
    return value


def valid_query(value: str) -> str:
    if "{{hosts}}" not in value and "{{servers}}" not in value:
        raise ValueError(
            'the query must select the hosts judged: put instance=~"{{hosts}}" (or server=~"{{servers}}", their '
            "load balancer names) in its selector"
        )
    if any(c in value for c in "\r\0"):
        raise ValueError("a query is text (no NUL or carriage return)")
    return value


def valid_instance(value: str) -> str:
    try:
        parsed = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(value)]
        fields = {name for name, _, _ in parsed if name is not None}
        if any(spec or conversion for name, spec, conversion in parsed if name is not None):
            fields.add("?")  # {address:>99999} would make a string of any size: plain placeholders only
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


# What every service behind HAProxy has without instrumenting anything: HAProxy's own Prometheus exporter
# (`http-request use-service prometheus-exporter`), per backend server (each host's lb_server).
_RESPONSES = 'haproxy_server_http_responses_total{proxy="{{backend}}",server=~"{{servers}}"'
_REQUESTS = "sum(increase(" + _RESPONSES + "}[{{window}}]))"
BUILTIN: dict[str, dict[str, object]] = {
    "error_rate": {
        "query": "(sum(rate("
        + _RESPONSES
        + ',code="5xx"}[{{window}}])) or vector(0)) / sum(rate('
        + _RESPONSES
        + "}[{{window}}]))",
        "condition": "canary <= baseline * 1.5 + 0.001",
        "sample": _REQUESTS,
        "min_sample": 50,
    },
    "response_time": {
        "query": 'max(haproxy_server_response_time_average_seconds{proxy="{{backend}}",server=~"{{servers}}"})',
        "condition": "canary <= baseline * 1.5 + 0.05",
        "sample": _REQUESTS,
        # HAProxy averages a server's last 1024 responses: with fewer in the window, the canary's figure is
        # partly the old release's (and the baseline's partly older traffic), so it would judge the past.
        "min_sample": 1024,
    },
}
Builtin = Literal["error_rate", "response_time"]


class BuiltinMetricSpec(Spec):
    """A built-in metric with some of its settings changed: {builtin: error_rate, condition: ...}."""

    builtin: Builtin = Field(description="error_rate or response_time, from HAProxy's exporter")
    condition: Annotated[str, AfterValidator(valid_condition)] | None = Field(default=None)
    min_sample: float | None = Field(default=None, ge=0)
    interval: int | None = Field(default=None, ge=1, le=600)
    count: int | None = Field(default=None, ge=1, le=100)
    failure_limit: int | None = Field(default=None, ge=0)
    inconclusive_limit: int | None = Field(default=None, ge=0)
    dry_run: bool | None = None


def metric_of(entry: MetricSpec | BuiltinMetricSpec | str) -> MetricSpec:
    """A metric as the analysis runs it: a built-in's name or overrides become its full settings."""
    if isinstance(entry, MetricSpec):
        return entry
    name = entry if isinstance(entry, str) else entry.builtin
    changed = {} if isinstance(entry, str) else entry.model_dump(exclude={"builtin"}, exclude_none=True)
    return MetricSpec.model_validate({"name": name, **BUILTIN[name], **changed})


def _kind(value: object) -> str:
    """The entry's kind, from what was written (validating) or from the model it became (serializing)."""
    if isinstance(value, str):
        return "builtin-name"
    if (isinstance(value, dict) and "builtin" in value) or isinstance(value, BuiltinMetricSpec):
        return "builtin-metric"
    return "metric"


# One kind of entry per shape (a name, {builtin: ...}, or a metric of your own), so a mistake is reported
# against the kind written, not against every kind it is not. The tags never show in a problem's path.
UNION_TAGS = frozenset({"metric", "builtin-metric", "builtin-name"})
MetricEntry = Annotated[
    Annotated[MetricSpec, Tag("metric")]
    | Annotated[BuiltinMetricSpec, Tag("builtin-metric")]
    | Annotated[Builtin, Tag("builtin-name")],
    Discriminator(_kind),
]


class AnalysisSpec(Spec):
    prometheus: Name = Field(description="a Prometheus server named in Gantry's settings (GANTRY_PROMETHEUS)")
    canary: Annotated[str | int, AfterValidator(valid_batch_size)] = Field(
        default="1", description="the first batch, the canary: a number of hosts, or a percentage like 10%"
    )
    instance: Annotated[str, Field(max_length=200), AfterValidator(valid_instance)] = Field(
        default="{address}", description='a host\'s instance label in Prometheus, e.g. "{address}:9100"'
    )
    bake: int = Field(default=0, ge=0, le=3600, description="seconds after the canary is live before measuring")
    bake_max: int = Field(
        default=0,
        ge=0,
        le=3600,
        description="after bake, keep waiting (at most this many seconds from the canary's start) until every "
        "metric's canary sample reaches its min_sample: a quiet service is measured once it has traffic",
    )
    every_batch: bool = Field(
        default=False,
        description="judge every later batch too, against the hosts still on the old release (the last batch: "
        "by its absolute conditions only)",
    )
    traffic: int = Field(
        default=10, ge=1, le=50, description="percent of requests the canary gets behind HAProxy while judged"
    )
    on_inconclusive: Literal["pause", "continue"] | None = Field(
        default=None,
        description="pause for a person (the default in production) or continue on health checks alone",
    )
    window: str = Field(
        default="1m", pattern=r"^[1-9][0-9]{0,3}[smh]$", description="the range of {{window}} (the built-ins' rate)"
    )
    metrics: list[MetricEntry] = Field(
        min_length=1,
        max_length=20,
        description="what the canary is judged by: error_rate and response_time (HAProxy's exporter), or PromQL",
    )

    @property
    def judged_by(self) -> list[MetricSpec]:
        return [metric_of(entry) for entry in self.metrics]

    @property
    def builtins(self) -> bool:
        return any(not isinstance(entry, MetricSpec) for entry in self.metrics)
