"""The chart's Grafana dashboard and alert rules: they parse and hold the panels and alerts the service needs
(that every query's metric is really exported: tests/integration/serving/test_monitoring.py)."""

from __future__ import annotations

import json

import yaml

from support.paths import ROOT

FILES = ROOT / "gitops" / "charts" / "transformers-qa" / "files"
DASHBOARD = FILES / "grafana" / "transformers-qa.json"
ALERTS = FILES / "prometheus" / "alerts.yaml"


def test_dashboard_parses_and_has_the_panels_the_service_needs():
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] == "transformers-qa"
    titles = " | ".join(p["title"] for p in dashboard["panels"])
    for needed in ("requests per second", "p50 / p95 / p99", "Error rate", "queue and compute", "Thumbs-down ratio by model version"):
        assert needed in titles
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    alerts = {rule["alert"] for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]}
    assert {"QaAskLatencyHigh", "QaErrorRateHigh", "QaThumbsDownRatioHigh"} <= alerts
