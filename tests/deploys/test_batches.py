"""Batches and the canary's size: counts and percentages of the hosts (deployer/deploys/batches.py)."""

from __future__ import annotations

import pytest

from deployer.catalog.analysis_spec import AnalysisSpec
from deployer.deploys.batches import batch_sizes, canary_first, canary_hosts


@pytest.mark.parametrize(
    ("hosts", "canary", "expected"),
    [(3, "1", 1), (3, 2, 2), (3, "5", 2), (10, "10%", 1), (10, "25%", 3), (20, "10%", 2), (1, "50%", 1), (2, "90%", 1)],
)
def test_the_canary_is_some_hosts_and_always_leaves_a_baseline(hosts: int, canary: str | int, expected: int) -> None:
    assert canary_hosts(hosts, canary) == expected


def test_the_canary_goes_first_then_the_environments_batches() -> None:
    assert canary_first(10, "10%", "50%") == [1, 5, 4]
    assert batch_sizes(10, "50%") == [5, 5]


@pytest.mark.parametrize("canary", ["0", "0%", "101%", "ten", "-1"])
def test_a_canary_that_is_no_size_is_refused(canary: str) -> None:
    with pytest.raises(ValueError, match="a number of hosts"):
        AnalysisSpec.model_validate({"prometheus": "main", "canary": canary, "metrics": ["error_rate"]})
