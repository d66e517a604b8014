"""Watching Gantry itself: the alerting rules shipped in docs/prometheus load into the real `promtool check
rules`, and the rules and the Grafana dashboard in docs/grafana ask only for metrics Gantry's /metrics has."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.one_backend  # the database backend makes no difference here

DOCS = Path(__file__).resolve().parents[2] / "docs"
RULES = DOCS / "prometheus" / "gantry-alerts.yml"
DASHBOARD = DOCS / "grafana" / "gantry-dashboard.json"


def test_the_alerting_rules_load_into_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: apt-get install prometheus (make test installs it)")
    checked = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout


def test_rules_and_dashboard_ask_only_for_metrics_gantry_has(db: None) -> None:
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "root-password-1"))
    scraped = admin.get("/metrics").content.decode()
    names = {sample.name for family in text_string_to_metric_families(scraped) for sample in family.samples}
    names |= {family.name for family in text_string_to_metric_families(scraped)}
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    asked = set(re.findall(r"\bgantry_[a-z_]+", RULES.read_text() + "\n".join(exprs)))
    missing = {name for name in asked if not {name, re.sub(r"_(total|bucket)$", "", name)} & names}
    assert not missing, f"asked for but not in /metrics: {sorted(missing)}"
    assert {"gantry_canary_measurements_total", "gantry_deploy_oldest_active_seconds"} <= asked
