"""A step's configuration goes into MLflow as JSON and comes back typed."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from mlops.core.errors import MlopsError
from mlops.core.settings import Settings
from mlops.evaluation.gate import GateConfig
from mlops.lifecycle import tracking
from mlops.training.config import TrainConfig


def test_a_step_config_round_trips_typed_through_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # mlflow.set_tracking_uri sets it; restored after the test
    tracking.configure(Settings(home=tmp_path, tracking_uri=uri))
    with mlflow.start_run() as run:
        pass
    given = TrainConfig(epochs=3, rules=("how", "argument"), max_steps=7)
    tracking.log_config(run.info.run_id, "train", given)
    assert tracking.load_config(run.info.run_id, "train", TrainConfig) == given
    with pytest.raises(MlopsError, match=f"run {run.info.run_id} has no valid config/gate.json"):
        tracking.load_config(run.info.run_id, "gate", GateConfig)
    tracking.log_config(run.info.run_id, "gate", TrainConfig())  # the wrong shape under that name
    with pytest.raises(MlopsError, match=r"has no valid config/gate.json \(Extra inputs are not permitted\)"):
        tracking.load_config(run.info.run_id, "gate", GateConfig)
