"""An analysis metric's condition: one comparison, numbers and result/canary/baseline only; missing values,
NaN and infinities are undecided (None), never a pass; nothing else is accepted."""

from __future__ import annotations

import math

import pytest

from deployer.catalog.load import CatalogError, catalog_parse
from deployer.lib.conditions import ConditionError, condition_check, condition_holds, uses_baseline

pytestmark = pytest.mark.one_backend  # the database backend makes no difference here


@pytest.mark.parametrize(
    ("condition", "values", "holds"),
    [
        ("result < 0.01", {"canary": 0.005}, True),
        ("result < 0.01", {"canary": 0.05}, False),
        ("canary <= baseline * 1.5 + 0.001", {"canary": 0.0015, "baseline": 0.001}, True),
        ("canary <= baseline * 1.5 + 0.001", {"canary": 0.048, "baseline": 0.001}, False),
        ("canary >= -1", {"canary": 0.0}, True),
        ("result < 0.01", {"canary": math.nan}, None),
        ("result < 0.01", {"canary": None}, None),
        ("result < 0.01", {"canary": math.inf}, None),
        ("canary <= baseline * 1.5", {"canary": 0.1, "baseline": None}, None),
        ("canary <= 1 / baseline", {"canary": 0.1, "baseline": 0.0}, None),
    ],
)
def test_a_condition_holds_fails_or_is_undecided(condition: str, values: dict, holds: bool | None) -> None:
    assert condition_holds(condition, values) is holds


@pytest.mark.parametrize(
    ("condition", "said"),
    [
        ("__import__('os').system('id') < 1", "a condition holds numbers"),
        ("result < 0.01 and result > 0", "one comparison"),
        ("0 < result < 1", "one comparison"),
        ("result == 0", "one comparison with <, <=, > or >="),
        ("latency < 1", "unknown name 'latency'"),
        ("result <", "cannot read"),
        ("result ** 2 < 1", "a condition holds numbers"),
    ],
)
def test_anything_else_is_refused_saying_how_to_write_it(condition: str, said: str) -> None:
    with pytest.raises(ConditionError, match=said):
        condition_check(condition)


def test_a_condition_says_whether_it_needs_the_baseline() -> None:
    assert uses_baseline("canary <= baseline * 2") and not uses_baseline("result < 0.01")


def test_a_bad_analysis_in_the_catalog_is_a_problem_at_its_line() -> None:
    catalog = """\
services:
  app:
    repo: /srv/git/app.git
    environments:
      prod:
        deploy_path: /srv/app
        hosts: [{address: 10.0.0.1}]
        analysis:
          prometheus: main
          metrics:
            - name: error_rate
              query: sum(rate(errors_total[1m]))
              condition: result = 0
"""
    with pytest.raises(CatalogError) as caught:
        catalog_parse(catalog)
    said = str(caught.value)
    assert "catalog.yml:12: services.app.environments.prod.analysis.metrics[0].query: the query must select" in said
    assert "catalog.yml:13: services.app.environments.prod.analysis.metrics[0].condition: cannot read" in said


BUILTINS = """\
services:
  app:
    repo: /srv/git/app.git
    analysis:
      prometheus: main
      metrics: [error_rate, {builtin: response_time, condition: result < 0.5}]
    environments:
      prod:
        deploy_path: /srv/app
        hosts: [{address: 10.0.0.1, lb_server: app1}, {address: 10.0.0.2, lb_server: app2}]
        load_balancer: {runtime_api: /run/haproxy.sock, backend: app}
      test:
        deploy_path: /srv/app
        hosts: [{address: 10.0.0.3}]
"""


def test_built_in_metrics_need_the_load_balancer_they_read() -> None:
    with pytest.raises(CatalogError) as caught:
        catalog_parse(BUILTINS)
    (problem,) = caught.value.problems
    assert problem.render("catalog.yml").startswith(
        "catalog.yml:4: services.app.analysis: error_rate and response_time"
    )
    assert "give test a load_balancer" in problem.message

    spec = catalog_parse(
        BUILTINS.replace("      test:\n        deploy_path: /srv/app\n        hosts: [{address: 10.0.0.3}]\n", "")
    )
    prod = spec.services["app"].analysis
    assert prod is not None
    error_rate, response_time = prod.judged_by
    assert 'code="5xx"' in error_rate.query and error_rate.min_sample == 50
    assert response_time.condition == "result < 0.5" and "response_time_average_seconds" in response_time.query
    assert response_time.min_sample == 1024, "HAProxy's average spans 1024 responses: all of them new ones"


@pytest.mark.parametrize("instance", ["{address:>999999999}", "{address!r}", "{address.__class__}", "{port}", "x"])
def test_an_instance_label_is_plain_placeholders_only(instance: str) -> None:
    from deployer.catalog.analysis_spec import AnalysisSpec

    metric = {"name": "m", "query": 'x{instance=~"{{hosts}}"}', "condition": "result < 1"}
    with pytest.raises(ValueError, match="the instance label of a host"):
        AnalysisSpec.model_validate({"prometheus": "main", "instance": instance, "metrics": [metric]})
