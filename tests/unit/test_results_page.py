"""docs/results.md is rendered from the files `mlops evaluate` and `mlops bench` write, and says when one is missing.

The fixtures are shaped as the writers write them: metrics by mlops.search.metrics.score_by_slice (what
evaluate scores with), load levels by mlops.bench.load.LoadResult (what bench measures with), and the keys
of report.json (mlops/evaluation/evaluate.py, ``evaluate``) and bench.json (mlops/bench/run.py,
``run_bench`` and ``_locust``) checked against those functions' source, so a writer that changes its
keys fails here first.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

from mlops.bench.load import LoadResult
from mlops.core.errors import MlopsError
from mlops.core.settings import Settings
from mlops.results_page import render, write_results_page
from mlops.search.metrics import score_by_slice

PACKAGE = Path(__file__).resolve().parents[2] / "model" / "mlops"


def _scores(hits: list[bool], slices: list[str]) -> dict:
    """score_by_slice over questions whose right symbol is ranked first (hit) or not at all (miss)."""
    ranked = [["right"] if hit else ["wrong"] for hit in hits]
    return score_by_slice(ranked, [{"right"}] * len(hits), slices)


def evaluation_report(run_id: str = "run0123", champion: bool = False) -> dict:
    sets = {"test": ["modeling", "generation"], "natural": ["caches", "training"], "natural_dev": ["caches", "hub"],
            "test_trained_rules": ["modeling", "modeling"], "natural_fresh": ["labelled", "unlabelled"]}
    hits = {"candidate": [True, True], "candidate_dense": [True, False], "untuned": [False, True], "bm25": [False, False]}
    if champion:
        hits["champion"] = [True, False]
    systems = {name: {which: _scores(h, slices) for which, slices in sets.items()} for name, h in hits.items()}
    checks = [{"check": "candidate_dense test_trained_rules mrr > untuned test_trained_rules mrr", "passed": True,
               "values": [0.5, 0.5]}]
    return {
        "run_id": run_id,
        "dataset_hash": "d4c0ffee",
        "champion_version": "3" if champion else None,
        "bm25_weight": 0.3,
        "search_questions_per_second": 287.4,
        "bm25_weight_sweep_validation": {"0.0": 0.81, "0.3": 0.9},
        "served_variant": "onnx-int8",
        "variants": {variant: {"sets": {which: {"recall@5": 0.9, "mrr": mrr, "delta_recall@5": 0.0, "delta_mrr": mrr - 0.8}
                                        for which in ("validation", "natural_dev")},
                               "questions_per_second": qps, "deployable": fault is None, "fault": fault,
                               **({"file": "model.onnx", "bytes": 23 * 2**20, "sha256": "ab" * 32} if variant != "torch-fp32" else {})}
                     for variant, mrr, qps, fault in (("torch-fp32", 0.8, 250.0, None), ("onnx-fp32", 0.8, 300.0, None),
                                                      ("onnx-int8", 0.795, 500.0, None))},
        "abstention": {"threshold": 0.312, "chosen_on": ["natural_dev", "validation"], "max_dev_refused": 0.01,
                       "in_domain_refused": {"validation": 0.0, "natural_dev": 0.0085, "natural": 0.02},
                       "off_topic_answered": {"off_topic_test": {"answered": 0.125, "count": 8, "by_kind": {"adversarial": 0.5, "gibberish": 0.0}}},
                       "targets": {"in_domain_refused": 0.03, "off_topic_answered": 0.1}},
        "systems": systems,
        "gate": {"passed": True, "reason": "all checks passed", "metric": "mrr", "tolerance": 0.01, "checks": checks},
    }


def bench_report() -> dict:
    level = lambda c, qps, p95: LoadResult(concurrency=c, requests=480, failures=0, qps=qps, p50_ms=p95 / 2,  # noqa: E731
                                           p95_ms=p95, p99_ms=p95 * 2).model_dump(exclude={"concurrency"})
    concurrency = {}
    for c, triton, naive in ((1, 28.5, 29.0), (8, 77.25, 27.5)):
        concurrency[str(c)] = {"triton": level(c, triton, 40.0 * c), "naive": level(c, naive, 90.0 * c),
                               "triton_vs_naive": round(triton / naive, 2), "triton_vs_bound": round(triton / 100.0, 2)}
    return {
        "model_version": "4", "questions": 50, "cpu_count": 2, "requests_per_level": 480, "bound": {"qps": 100.0},
        "concurrency": concurrency,
        "variants": {variant: {"bound_qps": bound, **{str(c): {"qps": qps * c ** 0.5, "p95_ms": 40.0 * c, "failures": 0,
                                                               "vs_torch": ratio} for c in (1, 8)}}
                     for variant, bound, qps, ratio in (("torch-fp32", 100.0, 28.0, 1.0), ("onnx-int8", 250.0, 70.0, 2.5))},
        "triton_profile": {"samples": 500, "share": {"encoder forward (torch)": 0.89, "BM25": 0.01}},
        "api": {"users": 8, "seconds": 60, "requests": 4000, "failures": 0, "qps": 66.7, "p50_ms": 110.0, "p95_ms": 200.0,
                "p99_ms": 300.0},
    }


def _function(path: Path, name: str) -> ast.FunctionDef:
    return next(n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef) and n.name == name)


def _keys(node: ast.Dict) -> dict:
    """The string keys of a dict literal, nested where a value is itself a non-empty dict literal."""
    return {k.value: (_keys(v) if isinstance(v, ast.Dict) and v.keys else None) for k, v in zip(node.keys, node.values, strict=True)}


def _shape(value: dict, like: dict) -> dict:
    return {k: (_shape(value[k], like[k]) if like.get(k) else None) for k in value}


def _written_keys(function: ast.FunctionDef, variable: str) -> dict:
    """Keys of ``variable = {...}`` plus every ``variable["key"] = ...`` in the function."""
    keys: dict = {}
    for node in ast.walk(function):
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == variable and isinstance(node.value, ast.Dict):
            keys.update(_keys(node.value))
        if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) and target.value.id == variable \
                and isinstance(target.slice, ast.Constant):
            keys[target.slice.value] = None
    return keys


def test_the_fixtures_have_the_keys_the_writers_write():
    evaluate = _written_keys(_function(PACKAGE / "evaluation" / "evaluate.py", "evaluate"), "report")
    assert _shape(evaluation_report(), evaluate) == evaluate
    bench = _written_keys(_function(PACKAGE / "bench" / "run.py", "run_bench"), "report")
    assert _shape(bench_report(), bench) == bench
    locust = _keys(next(n.value for n in ast.walk(_function(PACKAGE / "bench" / "run.py", "_locust")) if isinstance(n, ast.Return)))
    assert set(bench_report()["api"]) == set(locust)


def test_the_page_shows_every_figure_of_both_reports(tmp_path: Path):
    page = render(evaluation_report(champion=True), bench_report(), ".mlops/reports/run0123/report.json", ".mlops/reports/bench.json")
    assert "run `run0123`, dataset `d4c0ffee`, compared with champion version 3" in page
    assert "Quality gate: **passed** (all checks passed; metric `mrr`, tolerance 0.01)" in page
    assert "BM25 fusion weight: 0.3 (chosen on the validation split by `mrr`: 0.0: 0.810, 0.3: 0.900)" in page
    assert "287 questions/s" in page
    assert "the served one is **onnx-int8**" in page
    assert "### Abstention (no answer below a best cosine of 0.312)" in page and "refuses at most 1% of each" in page
    assert "| `natural` | 2.0% |" in page and "| `off_topic_test` | 8 | 12.5% | 50% | 0% |" in page
    assert "| onnx-int8 | 0.900 (+0.000) / 0.795 (-0.005) | 0.900 (+0.000) / 0.795 (-0.005) | 500 | 23.0 MiB | yes |" in page
    for which, count in (("natural", 2), ("natural_dev", 2), ("test", 2), ("test_trained_rules", 2), ("natural_fresh", 2)):
        assert f"(`{which}`, {count} questions)" in page
    assert "| labelled | 1 | 1.000 | 1.000 | 1.000 | 1.000 |\n| unlabelled | 1 | 1.000 |" in page  # the fresh set's split
    assert "| candidate (deployed system) | 1.000 | 1.000 | 1.000 | 1.000 |" in page
    assert "| tuned encoder alone | 0.500 | 0.500 | 0.500 | 0.500 |" in page
    assert "| BM25 | 0.000 | 0.000 | 0.000 | 0.000 |" in page
    assert "| champion | 0.500 |" in page
    assert "| 8 | 77.2 | 160.0 | 320.0 | 640.0 | 0 | 27.5 | 720.0 | 0 | 2.81x | 0.77 |" in page
    assert "In-process bound (batched, no server): 100.0 questions/s" in page
    assert "66.7 q/s, p50 110 ms, p95 200 ms, p99 300 ms, 0 failures in 4000 requests" in page
    assert "encoder forward (torch) 89%, BM25 1%" in page
    assert "| onnx-int8 | 70.0 / 40 / 2.50x | 198.0 / 320 / 2.50x | 250.0 |" in page


def test_a_missing_report_is_said_on_the_page(tmp_path: Path):
    settings = Settings(home=tmp_path / "home", tracking_uri="sqlite://")
    page = write_results_page(settings, tmp_path / "docs" / "results.md", echo=lambda _: None).read_text()
    assert "No evaluation report" in page and "No benchmark report" in page
    settings.reports_dir.mkdir(parents=True)
    (settings.reports_dir / "bench.json").write_text(json.dumps(bench_report()))
    page = write_results_page(settings, tmp_path / "results.md", echo=lambda _: None).read_text()
    assert "No evaluation report" in page and "No benchmark report" not in page and "| 1 | 28.5 |" in page


def test_the_newest_evaluation_report_is_used(tmp_path: Path):
    settings = Settings(home=tmp_path / "home", tracking_uri="sqlite://")
    for age, run in ((100, "older"), (0, "newer")):
        path = settings.reports_dir / run / "report.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(evaluation_report(run)))
        os.utime(path, (path.stat().st_mtime - age,) * 2)
    page = write_results_page(settings, tmp_path / "results.md", echo=lambda _: None).read_text()
    assert "run `newer`" in page and "older" not in page and "No benchmark report" in page


def test_a_file_that_is_not_a_report_is_one_line(tmp_path: Path):
    settings = Settings(home=tmp_path / "home", tracking_uri="sqlite://")
    settings.reports_dir.mkdir(parents=True)
    (settings.reports_dir / "bench.json").write_text("{not json")
    with pytest.raises(MlopsError, match="is not valid JSON"):
        write_results_page(settings, tmp_path / "results.md", echo=lambda _: None)
    (settings.reports_dir / "bench.json").write_text(json.dumps({"model_version": "4"}))
    with pytest.raises(MlopsError, match="is not a report `mlops bench` writes"):
        write_results_page(settings, tmp_path / "results.md", echo=lambda _: None)
