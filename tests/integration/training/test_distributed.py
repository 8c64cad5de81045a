"""Multi-minute tests, run by `make test-all`: 2-process DDP training and the whole pipeline on the real corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops.core.settings import Settings
from mlops.lifecycle import registry, tracking
from support.cli import run

pytestmark = pytest.mark.slow


def test_torchrun_two_processes_write_one_model(tmp_path: Path, mini_package: Path):
    home = tmp_path / "home"
    assert run("data", "--source", str(mini_package), home=home).returncode == 0
    result = run("train", "--nproc-per-node", "2", "--max-steps", "3", "--batch-size", "8", home=home)
    assert result.returncode == 0, result.stderr[-3000:]
    run_ids = result.stdout.split()
    assert len(run_ids) == 1  # only rank 0 reports (and logs)
    client = tracking.configure(Settings(home=home, tracking_uri=f"sqlite:///{home / 'mlflow.db'}"))
    runs = client.search_runs([tracking.experiment_id(client)])
    assert [r.info.run_id for r in runs] == run_ids
    params = runs[0].data.params
    assert params["world_size"] == "2" and params["backend"] == "gloo"
    assert [m.step for m in client.get_metric_history(run_ids[0], "train_loss")] == [1, 2, 3]
    assert sum(a.path.endswith("model.safetensors") for a in client.list_artifacts(run_ids[0], "model")) == 1


def test_whole_pipeline_on_the_transformers_corpus(tmp_path: Path):
    home = tmp_path / "home"
    result = run("pipeline", "--max-steps", "20", home=home, timeout=1500)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "stage times: data" in result.stderr and "contract test passed" in result.stderr
    settings = Settings(home=home, tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    client = tracking.configure(settings)
    champion = registry.by_alias(client, settings.model_name, registry.CHAMPION)
    assert champion is not None and champion.tags["dataset_hash"]
    answer = run("ask", "How do I enable gradient checkpointing?", "--top-k", "5", "--json", home=home)
    assert answer.returncode == 0, answer.stderr
    answers = json.loads(answer.stdout)
    assert len(answers) == 5 and {"symbol", "path", "line", "score", "text"} <= answers[0].keys()
    assert any(a["symbol"].endswith("checkpointing_enable") for a in answers)
    assert answers[0]["score"] >= answers[-1]["score"]
