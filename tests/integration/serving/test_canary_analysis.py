"""The canary's analysis and the thumbs-down alert on a real Prometheus (Debian's `prometheus`, from
`make system-deps`) scraping the real API and Triton on 127.0.0.1: a stable model version 1 and a canary version 2
(the same model under another version folder), each behind its own API as the Triton Service's pods are behind one.
Users rate the canary badly; every query of files/rollouts/analysis.yaml, with its args filled as Argo Rollouts fills
them, returns one value per check, and the conditions decide: errors and latency pass, the thumbs-down check fails
(the Rollout would abort). The alert rule's expression names version 2 alone.

The conditions are expr-lang, evaluated by the Argo Rollouts controller; here by support.expr_lang's translation of
the subset they use (len, isNaN, result[0], comparisons, !, &&, ||): a condition outside it fails the test."""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import pytest
import requests
import yaml

from mlops.core.processes import start_group, stop_group
from mlops.triton.server import TritonServer, free_ports
from support.expr_lang import evaluate
from support.package import QA_MODEL
from support.paths import ROOT
from support.services import ApiProcess

FILES = ROOT / "gitops" / "charts" / "transformers-qa" / "files"
ANALYSIS = yaml.safe_load((FILES / "rollouts" / "analysis.yaml").read_text())
ALERTS = yaml.safe_load((FILES / "prometheus" / "alerts.yaml").read_text())
QUESTIONS = ["How do I pad a batch?", "How do I continue a training run that crashed?", "How do I set the random seed?"]


def decide(condition: str, result: list[float]) -> bool:
    return bool(evaluate(condition, {"result": result}, {"len": len, "isNaN": math.isnan}))


def query(prometheus: str, promql: str) -> list[float]:
    """An instant query's vector as Argo Rollouts' prometheus provider reads it: one float per series."""
    answer = requests.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=10).json()
    assert answer["status"] == "success", answer
    assert answer["data"]["resultType"] == "vector", answer
    return [float(series["value"][1]) for series in answer["data"]["result"]]


def wait_for(check, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.fixture
def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.skip("prometheus is not installed: run `make system-deps` (Debian package prometheus)")
    return found


def test_the_analysis_aborts_a_canary_users_reject_and_the_alert_names_it(qa_triton: TritonServer, qa_repository: Path,
                                                                          prometheus_binary: str, tmp_path: Path):
    canary_repository = tmp_path / "canary-repository"
    shutil.copytree(qa_repository, canary_repository)
    (canary_repository / QA_MODEL / "1").rename(canary_repository / QA_MODEL / "2")
    with TritonServer(canary_repository, tmp_path / "canary-triton") as canary_triton:
        canary_triton.load_model(QA_MODEL)
        apis = {"1": ApiProcess(qa_triton.http_url, tmp_path / "stable-api"), "2": ApiProcess(canary_triton.http_url, tmp_path / "canary-api")}
        port = free_ports(1)[0]
        targets = [api.url.removeprefix("http://") for api in apis.values()] + [qa_triton.metrics_url, canary_triton.metrics_url]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "qa", "static_configs": [{"targets": targets}]}]}))
        proc = start_group([prometheus_binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                            f"--web.listen-address=127.0.0.1:{port}"], tmp_path / "prometheus.log")
        prometheus = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: _up(prometheus) == len(targets), "Prometheus to scrape the APIs and Tritons")
            # Traffic and ratings over several scrapes (rate() and increase() need samples before and after); the
            # feedback series exist at 0 from each version's first answer, and are scraped so before the first rating.
            ratings = {"1": ["up"] * 10 + ["down"] * 2, "2": ["down"] * 20 + ["up"] * 4}
            for round_ in range(7):
                for version, api in apis.items():
                    for question in QUESTIONS:
                        answer = requests.post(f"{api.url}/v1/ask", json={"question": question}, timeout=30).json()
                        assert answer["model_version"] == version
                    for rating in ratings[version][round_ - 1::6] if round_ else []:
                        requests.post(f"{api.url}/v1/feedback", timeout=10, json={
                            "question": QUESTIONS[0], "symbol": "minilib.Batch.pad", "rating": rating, "model_version": version}
                        ).raise_for_status()
                if round_ == 0:
                    wait_for(lambda: query(prometheus, "count(qa_feedback_total)") == [4.0], "the feedback series at 0")
                time.sleep(1.2)
            wait_for(lambda: query(prometheus, "sum by (model_version) (qa_feedback_total)") in ([12.0, 24.0], [24.0, 12.0]),
                     "the last ratings scraped")
            results = {}
            for metric in ANALYSIS["metrics"]:
                promql = metric["provider"]["prometheus"]["query"].replace("{{args.model-version}}", "2")
                assert "{{" not in promql
                results[metric["name"]] = query(prometheus, promql)
            thumbs_query = next(m for m in ANALYSIS["metrics"] if m["name"] == "thumbs-down-ratio")["provider"]["prometheus"]["query"]
            unrated = query(prometheus, thumbs_query.replace("{{args.model-version}}", "9"))  # a version nobody rated
            alert = next(r for g in ALERTS["groups"] for r in g["rules"] if r["alert"] == "QaThumbsDownRatioHigh")
            firing = requests.get(f"{prometheus}/api/v1/query", params={"query": alert["expr"]}, timeout=10).json()["data"]["result"]
        finally:
            stop_group(proc)
            for api in apis.values():
                api.kill()

    assert all(len(values) == 1 for values in results.values()), results
    verdicts = {}
    for metric in ANALYSIS["metrics"]:
        result = results[metric["name"]]
        success, failure = decide(metric["successCondition"], result), decide(metric["failureCondition"], result)
        assert not (success and failure), metric["name"]
        verdicts[metric["name"]] = "success" if success else "failure" if failure else "inconclusive"
    assert results["error-ratio"] == [0.0] and verdicts["error-ratio"] == "success"
    assert verdicts["p95-latency"] in ("success", "failure") and math.isfinite(results["p95-latency"][0])
    # version 2: 20 of 24 ratings down, version 1: 2 of 12 (each version's series exist at 0 from its first answer)
    assert results["thumbs-down-ratio"][0] == pytest.approx(20 / 24 - 2 / 12, abs=0.02), results
    assert verdicts["thumbs-down-ratio"] == "failure"
    assert [series["metric"]["model_version"] for series in firing] == ["2"]
    # With fewer than 10 ratings the thumbs-down check has no result, and its condition leaves the decision to the others.
    thumbs = next(m for m in ANALYSIS["metrics"] if m["name"] == "thumbs-down-ratio")
    assert unrated == [] and decide(thumbs["successCondition"], []) and not decide(thumbs["failureCondition"], [])


def _up(prometheus: str) -> int:
    try:
        return int(sum(query(prometheus, "up == 1")))
    except requests.ConnectionError:
        return 0
