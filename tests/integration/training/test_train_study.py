"""`mlops train-study` on the mini package: each case a real training nested under the study's run, the figures
derived from those runs' own per-step records, a plot logged with the report, and the results page showing both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops.core.errors import MlopsError
from mlops.core.settings import Settings
from mlops.lifecycle import tracking
from support.cli import assert_clean_error, invoke, run


def test_the_study_times_each_case_and_the_results_page_shows_it(tmp_path: Path, mini_package: Path):
    home = tmp_path / "home"
    assert invoke("data", "--source", str(mini_package), home=home).returncode == 0
    # Two torchrun workers share 2 cores with the suite's other workers: ~110 s alone, over 300 s under `make test`.
    done = run("train-study", "--processes", "1,2", "--strategies", "fsdp", "--batch-sizes", "8", "--steps", "11", home=home,
               timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[2/2] 2 process(es), fsdp, batch 8" in done.stderr
    report = json.loads(Path(done.stdout.strip()).read_text())
    client = tracking.configure(Settings(home=home, tracking_uri=f"sqlite:///{home / 'mlflow.db'}"))

    parent = client.get_run(report["study_run_id"])
    assert parent.data.tags[tracking.TAG_STAGE] == "train-study" and parent.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "study")} == {"study/train-study.json", "study/train-study.png"}
    assert [c["label"] for c in report["cases"]] == ["1p none b8", "2p fsdp b8"]
    for case in report["cases"]:
        child = client.get_run(case["run_id"])
        assert child.data.tags[tracking.TAG_PARENT] == parent.info.run_id
        assert child.data.params["strategy_used"] == case["strategy"] and child.data.params["world_size"] == str(case["processes"])
        elapsed = [m.value for m in sorted(client.get_metric_history(case["run_id"], "train_elapsed_seconds"), key=lambda m: m.step)]
        assert len(elapsed) == 11 and elapsed == sorted(elapsed)
        assert case["steps_per_second"] == pytest.approx(10 / (elapsed[-1] - elapsed[0]))
        assert case["pairs_per_second"] == pytest.approx(8 * case["steps_per_second"])
        assert elapsed[0] <= case["seconds_to_target"] <= elapsed[-1]
        assert case["peak_memory_mb"] > 100  # torch and the encoder alone take more
    assert report["cases"][0]["speedup_vs_one_process"] == 1.0
    assert max(c["final_loss"] for c in report["cases"]) == report["cases"][0]["target_loss"]
    assert report["machine"]["cores"] >= 1 and report["date"][:4].isdigit()
    # The study's trainings are not what `mlops evaluate` takes as the latest training.
    with pytest.raises(MlopsError, match="no finished training run"):
        tracking.latest_training_run(client)

    page = tmp_path / "docs" / "results.md"
    shown = invoke("results-page", "--out", str(page), home=home)
    assert shown.returncode == 0, shown.stderr
    text = page.read_text()
    section = text[text.index("## Training time"):]
    assert f"MLflow run `{report['study_run_id']}`" in section
    assert "| 2 | fsdp | 8 |" in section and "| 1 | none | 8 |" in section
    assert "![Loss against time and throughput of each case](train-study.png)" in section
    assert (page.parent / "train-study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("args", "message"), [
    (["--processes", "1,two"], "--processes: '1,two' is not a comma-separated list of whole numbers"),
    (["--processes", "2", "--batch-sizes", "9"], "--batch-sizes: a batch of 9 does not split over 2 processes"),
    (["--strategies", "zero3"], "--strategies: unknown strategy 'zero3'"),
    (["--steps", "2"], "--steps"),
])
def test_study_mistakes_are_one_line(mlops_home: Path, args: list[str], message: str):
    assert_clean_error(invoke("train-study", *args, home=mlops_home), message)
