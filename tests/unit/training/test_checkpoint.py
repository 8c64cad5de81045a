"""Which run --resume continues, and which checkpoint it loads, against a real MLflow store (SQLite, local artifacts):
one run only, the newest of the same configuration, dataset, commit, process count and key; a torn or stale
checkpoint file falls back to the one before; a finished run's checkpoints are deleted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from mlops.core.errors import MlopsError
from mlops.core.settings import Settings
from mlops.lifecycle import tracking
from mlops.training import checkpoint
from mlops.training.config import TrainConfig
from support.checkpoints import run_with_checkpoints

CONFIG = TrainConfig(epochs=2, checkpoint_every=10)
DATASET = "d" * 16
SHA = "a" * 40


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its schema made once: each test starts from a copy (migrations take seconds)."""
    home = tmp_path_factory.mktemp("store")
    tracking.configure(Settings(home=home, tracking_uri=f"sqlite:///{home / 'mlflow.db'}"))
    return home / "mlflow.db"


@pytest.fixture
def client(tmp_path: Path, empty_store: Path, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    monkeypatch.setenv("GIT_SHA", SHA)
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    return tracking.configure(Settings(home=tmp_path, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"))


def training_run(client: MlflowClient, started: int, *, status: str = "RUNNING", with_checkpoint: bool = True,
                 config: TrainConfig = CONFIG, world_size: int = 1, key: str | None = None, sha: str = SHA,
                 trainer: str = "elsewhere:1") -> str:
    """A training run as mlops.training.train starts it (tags, world_size parameter), in the state asked for."""
    tags = {tracking.TAG_STAGE: "train", tracking.TAG_DATASET: DATASET, tracking.TAG_GIT_SHA: sha,
            **checkpoint.run_tags(config, key), checkpoint.TAG_TRAINER: trainer}
    run_id = client.create_run(tracking.experiment_id(client), start_time=started, tags=tags).info.run_id
    client.log_param(run_id, "world_size", str(world_size))
    if with_checkpoint:
        client.log_text(run_id, json.dumps({"step": 10, "file": "a.pt"}), f"{checkpoint.FOLDER}/{checkpoint.LATEST}")
    if status != "RUNNING":
        client.set_terminated(run_id, status)
    return run_id


def test_nothing_to_resume_trains_afresh(client):
    decision = checkpoint.decide(client, DATASET, CONFIG, 1, None)
    assert decision.action == "fresh" and "no earlier run" in decision.reason


def test_the_newest_unfinished_run_with_a_checkpoint_is_resumed(client):
    training_run(client, 1000)
    newest = training_run(client, 2000)
    assert checkpoint.decide(client, DATASET, CONFIG, 1, None) == ("resume", newest, f"resuming run {newest}")


def test_the_checkpoint_interval_is_not_part_of_the_configuration(client):
    run_id = training_run(client, 1000)
    assert checkpoint.decide(client, DATASET, CONFIG.model_copy(update={"checkpoint_every": 99}), 1, None).run_id == run_id


def test_a_finished_newest_run_is_never_taken_over_and_older_ones_are_not_looked_at(client):
    training_run(client, 1000)  # unfinished, with a checkpoint, but older than the finished run
    finished = training_run(client, 2000, status="FINISHED")
    decision = checkpoint.decide(client, DATASET, CONFIG, 1, None)
    assert decision.action == "fresh" and finished in decision.reason


def test_a_finished_run_of_the_same_key_is_the_result_of_a_retried_step(client):
    finished = training_run(client, 1000, status="FINISHED", key="workflow-1")
    assert checkpoint.decide(client, DATASET, CONFIG, 1, "workflow-1")[:2] == ("done", finished)


def test_the_newest_run_without_a_checkpoint_is_marked_killed_and_none_older_is_resumed(client):
    training_run(client, 1000)
    crashed_early = training_run(client, 2000, with_checkpoint=False)
    decision = checkpoint.decide(client, DATASET, CONFIG, 1, None)
    assert decision.action == "fresh" and "no checkpoint" in decision.reason
    assert client.get_run(crashed_early).info.status == "KILLED"
    again = checkpoint.decide(client, DATASET, CONFIG, 1, None)
    assert again.action == "fresh" and "given up" in again.reason


@pytest.mark.parametrize("other", [
    {"world_size": 2}, {"sha": "b" * 40}, {"key": "workflow-2"}, {"config": CONFIG.model_copy(update={"learning_rate": 1e-4})},
])
def test_runs_of_another_process_count_commit_key_or_configuration_are_not_candidates(client, other: dict):
    mine = training_run(client, 1000, key="workflow-1")
    training_run(client, 2000, **{"key": "workflow-1", **other})  # newer, but not this training's
    assert checkpoint.decide(client, DATASET, CONFIG, 1, "workflow-1")[:2] == ("resume", mine)


def test_a_keyless_resume_does_not_take_over_a_keyed_run(client):
    training_run(client, 1000, key="workflow-1")
    assert checkpoint.decide(client, DATASET, CONFIG, 1, None).action == "fresh"


def artifact(client: MlflowClient, run_id: str, name: str) -> Path:
    return Path(client.get_run(run_id).info.artifact_uri.removeprefix("file://")) / checkpoint.FOLDER / name


def test_a_checkpoint_restores_the_model_optimiser_schedule_step_and_seconds(client):
    run_id, model = run_with_checkpoints((10, 20))
    state = checkpoint.load(run_id)
    assert (state["step"], state["file"], state["seconds"], state["world_size"]) == (20, "b.pt", 2.0, 1)
    assert all(torch.equal(state["model"][k], v) for k, v in model.state_dict().items())
    assert state["optimizer"]["state"]["weight"]["step"] == 2 and len(state["rng"]) == 1


def test_a_torn_newest_file_falls_back_to_the_one_before(client):
    run_id, _ = run_with_checkpoints((10, 20))
    newest = artifact(client, run_id, "b.pt")
    newest.write_bytes(newest.read_bytes()[:100])
    assert checkpoint.load(run_id)["step"] == 10


def test_a_file_from_another_step_than_latest_json_names_falls_back(client):
    run_id, _ = run_with_checkpoints((10, 20))
    (artifact(client, run_id, "b.pt")).write_bytes(artifact(client, run_id, "a.pt").read_bytes())  # step 10 under b.pt
    artifact(client, run_id, "a.pt").unlink()
    with pytest.raises(MlopsError, match=f"run {run_id}'s checkpoints are unreadable"):
        checkpoint.load(run_id)


def test_a_finished_runs_checkpoints_are_deleted(client):
    run_id, _ = run_with_checkpoints((10,))
    assert checkpoint.delete(client, run_id) is None
    assert client.list_artifacts(run_id, checkpoint.FOLDER) == []
