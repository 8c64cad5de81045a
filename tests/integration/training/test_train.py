"""`mlops train` on a small synthetic package: what the MLflow run records."""

from __future__ import annotations

from mlops.core.settings import Settings
from mlops.lifecycle import tracking
from mlops.training.config import TrainConfig
from mlops.training.train import train
from support.lifecycle import FAST


def test_training_logs_params_loss_and_model(settings: Settings):
    run_id = train(settings, TrainConfig(**FAST), echo=lambda *_: None)
    client = tracking.configure(settings)
    run = client.get_run(run_id)
    assert run.data.params["world_size"] == "1" and run.data.params["max_steps"] == "3"
    assert [m.step for m in client.get_metric_history(run_id, "train_loss")] == [1, 2, 3]
    assert run.data.metrics["train_seconds"] > 0
    artifacts = {a.path for a in client.list_artifacts(run_id, "model")}
    assert "model/model.safetensors" in artifacts and "model/tokenizer.json" in artifacts
    assert {a.path for a in client.list_artifacts(run_id, "dataset")} >= {"dataset/corpus.jsonl", "dataset/test.jsonl"}
    assert run.data.tags[tracking.TAG_DATASET] == (settings.datasets_dir / "LATEST").read_text().strip()
