"""The catalog's `slo:` key on a service (deploys/error_budget.py reads it): its objective, how Prometheus
measures it, and whether a spent or fast-burning error budget stops production deploys (`gate: true`;
shown only, by default).

Either Gantry computes the budget from two counters (`good` and `total`, PromQL with `{{range}}` where the
range goes, e.g. sum(increase(http_requests_total{job="shop",code!~"5.."}[{{range}}]))), or it reads the
recording rules Sloth already publishes for the SLO (`sloth: {service: shop, slo: requests-availability}`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from deployer.catalog.fields import Name, Spec
from deployer.lib.moments import duration_parse


def valid_window(value: str) -> str:
    if not timedelta(hours=1) <= duration_parse(value) <= timedelta(days=90):
        raise ValueError("an SLO window is from 1h to 90d, e.g. 30d or 28d")
    return value


def valid_counter_query(value: str) -> str:
    if "{{range}}" not in value:
        raise ValueError(
            "put {{range}} where the range goes: Gantry asks it over the SLO's window and over 5m, 30m, 1h and "
            'the burn-rate windows, e.g. sum(increase(http_requests_total{job="shop"}[{{range}}]))'
        )
    if any(c in value for c in "\r\0"):
        raise ValueError("a query is text (no NUL or carriage return)")
    return value


CounterQuery = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(valid_counter_query)]


class SlothSpec(Spec):
    service: Name = Field(description="the sloth_service label of its recording rules")
    slo: Name = Field(description="the sloth_slo label, e.g. requests-availability")


class SloSpec(Spec):
    prometheus: Name = Field(description="a Prometheus server named in GANTRY_PROMETHEUS (settings)")
    objective: float | None = Field(
        default=None, gt=50, lt=100, description="the share of good events promised, in percent, e.g. 99.9"
    )
    window: Annotated[str, Field(pattern=r"^[1-9][0-9]{0,3}[mhd]$"), AfterValidator(valid_window)] = Field(
        default="30d", description="the SLO's period, one Prometheus duration: 30d, 28d, 7d"
    )
    good: CounterQuery | None = Field(default=None, description="PromQL: good events over [{{range}}]")
    total: CounterQuery | None = Field(default=None, description="PromQL: all events over [{{range}}]")
    sloth: SlothSpec | None = Field(default=None, description="read Sloth's recording rules for this SLO instead")
    gate: bool = Field(
        default=False,
        description="stop production deploys while the budget is spent or burning fast (rollbacks and emergency "
        "deploys pass); false: shown only",
    )

    @model_validator(mode="after")
    def _one_source(self) -> SloSpec:
        if self.sloth and (self.good or self.total):
            raise ValueError("an SLO is measured by good and total, or read from Sloth's rules (sloth:), not both")
        if not self.sloth and not (self.good and self.total):
            raise ValueError("say how to measure it: good and total (PromQL with {{range}}), or sloth: {service, slo}")
        if not self.sloth and self.objective is None:
            raise ValueError("say the objective, in percent (e.g. objective: 99.9)")
        return self
