"""Checkpoints through the cluster's kind of MLflow: a real `mlflow server` (basic auth, artifacts proxied to S3 on
a local S3 server), logged in as the pipeline is. Saving, loading and deleting a finished run's checkpoints go
through the server's artifact API, so the S3 bucket holds none afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mlops.core.settings import Settings
from mlops.lifecycle import tracking
from mlops.training import checkpoint
from support.checkpoints import run_with_checkpoints
from support.services import mlflow_server, s3_server


def test_checkpoints_are_saved_loaded_and_deleted_through_the_tracking_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with s3_server("mlflow") as s3, mlflow_server(tmp_path / "mlflow", "s3://mlflow") as server:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", server.username)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", server.password)
        client = tracking.configure(Settings(home=tmp_path / "home", tracking_uri=server.url))
        run_id, model = run_with_checkpoints((10, 20))
        assert client.get_run(run_id).info.artifact_uri.startswith("mlflow-artifacts:")  # proxied, as in the cluster

        def stored() -> list[str]:
            return [o["Key"] for o in s3.list_objects_v2(Bucket="mlflow").get("Contents", []) if f"/{checkpoint.FOLDER}/" in o["Key"]]

        assert sorted(Path(k).name for k in stored()) == ["a.pt", "b.pt", "latest.json"]
        state = checkpoint.load(run_id)
        assert state["step"] == 20 and all(torch.equal(state["model"][k], v) for k, v in model.state_dict().items())
        assert checkpoint.delete(client, run_id) is None
        assert stored() == [] and client.list_artifacts(run_id, checkpoint.FOLDER) == []
