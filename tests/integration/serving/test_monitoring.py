"""The Grafana dashboard, the alert rules and the canary's analysis query only metrics (and labels) that the API and Triton
really export."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import promql_parser
import pytest
import yaml
from starlette.testclient import TestClient

from mlops.serving.api import ApiConfig, create_app
from mlops.triton.server import TritonServer
from support.package import QA_MODEL
from support.paths import ROOT

FILES = ROOT / "gitops" / "charts" / "transformers-qa" / "files"
DASHBOARD = FILES / "grafana" / "transformers-qa.json"
ALERTS = FILES / "prometheus" / "alerts.yaml"
ANALYSIS = FILES / "rollouts" / "analysis.yaml"


def _dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def _alert_queries() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def _analysis_queries(model_version: str = "1") -> list[str]:
    """The canary's queries with their args filled in as Argo Rollouts fills them ({{args.NAME}})."""
    spec = yaml.safe_load(ANALYSIS.read_text(encoding="utf-8"))
    return [m["provider"]["prometheus"]["query"].replace("{{args.model-version}}", model_version) for m in spec["metrics"]]


def _selectors(node) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched) of every vector selector in a parsed PromQL expression."""
    if isinstance(node, promql_parser.VectorSelector):
        return [(node.name, {m.name for m in node.matchers.matchers} - {"__name__"})]
    found = []
    for attribute in ("expr", "lhs", "rhs", "vector_selector", "param"):
        child = getattr(node, attribute, None)
        if child is not None:
            found += _selectors(child)
    for arg in getattr(node, "args", None) or []:
        found += _selectors(arg)
    return found


def _scrape(text: str) -> dict[str, set[str]]:
    """Sample name -> label names, read from the text exposition as Prometheus stores it.

    (prometheus_client's parser is not used: it renames counter samples to ``*_total``, which Triton's are not.)
    """
    samples: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group()
            samples.setdefault(name, set()).update(re.findall(r'([a-zA-Z_]\w*)="', line.split("}")[0] if "{" in line else ""))
    return samples


def test_every_queried_metric_and_label_is_exported(qa_triton: TritonServer, tmp_path: Path):
    config = ApiConfig(triton_url=qa_triton.http_url, model_name=QA_MODEL, database_url=f"sqlite:///{tmp_path / 'f.db'}")
    with TestClient(create_app(config)) as api:
        # Traffic of every kind the dashboard shows, so labelled series exist.
        assert api.post("/v1/ask", json={"question": "How do I pad a batch?"}).status_code == 200
        assert api.post("/v1/ask", json={"question": ""}).status_code == 422
        for rating in ("up", "down"):
            assert api.post("/v1/feedback", json={"question": "q", "symbol": "s", "rating": rating, "model_version": "1"}).status_code == 201
        exported = _scrape(api.get("/metrics").text)
    with urllib.request.urlopen(f"http://{qa_triton.metrics_url}/metrics", timeout=10) as response:
        exported |= _scrape(response.read().decode())

    queries = _dashboard_queries() + _alert_queries() + _analysis_queries()
    checked = set()
    for query in queries:
        try:
            parsed = promql_parser.parse(query)
        except Exception as e:  # the parser raises its own error types
            pytest.fail(f"invalid PromQL {query!r}: {e}")
        for name, labels in _selectors(parsed):
            assert name in exported, f"{name} (queried by {query!r}) is not exported by the API or Triton"
            assert labels <= exported[name], f"{name} has no label(s) {labels - exported[name]} (queried by {query!r})"
            checked.add(name)
    assert {"qa_http_requests_total", "qa_http_request_duration_seconds_bucket", "qa_feedback_total", "qa_answer_duration_seconds_bucket",
            "nv_inference_queue_duration_us", "nv_inference_compute_infer_duration_us", "nv_inference_request_failure"} <= checked
