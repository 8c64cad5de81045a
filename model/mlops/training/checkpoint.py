"""Checkpoints of a training run in its MLflow artifacts, so a killed run continues where it stopped.

A checkpoint holds the model, the optimiser, the scheduler, the step and every rank's RNG state (dropout); the data
order needs none, since each epoch's order comes from the seed. Two files take turns (``checkpoint/a.pt``, ``b.pt``)
and ``checkpoint/latest.json`` names the newest whole one, so a kill while one uploads leaves the other in use. A
resumed run looks for the newest unfinished training run of the same configuration (its digest, the checkpoint
interval left out) and the same dataset, and goes on in that run.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import mlflow
import torch
import torch.distributed as dist
from mlflow.tracking import MlflowClient

from mlops.lifecycle import tracking
from mlops.training.config import TrainConfig

FOLDER = "checkpoint"
SLOTS = ("a.pt", "b.pt")
LATEST = "latest.json"
TAG_TRAIN_CONFIG = "mlops.train_config"  # the digest resuming matches on


def config_digest(config: TrainConfig) -> str:
    return hashlib.sha256(config.model_dump_json(exclude={"checkpoint_every"}).encode()).hexdigest()[:16]


def _rng_states(world_size: int) -> list[torch.Tensor]:
    """Every rank's CPU (and, on a GPU, CUDA) generator state, in rank order; a collective call under DDP."""
    state = [torch.get_rng_state(), *([torch.cuda.get_rng_state()] if torch.cuda.is_available() else [])]
    if world_size == 1:
        return [state]
    gathered: list = [None] * world_size
    dist.all_gather_object(gathered, state)
    return gathered


def save(step: int, model: torch.nn.Module, optimizer, scheduler, rank: int, world_size: int, previous: str | None) -> str | None:
    """Log a checkpoint into the active run (rank 0; every rank must call it) and return the file it went to."""
    rng = _rng_states(world_size)
    if rank != 0:
        return None
    slot = SLOTS[1] if previous == SLOTS[0] else SLOTS[0]
    with tempfile.TemporaryDirectory(prefix="mlops-checkpoint-") as scratch:
        path = Path(scratch) / slot
        torch.save({"step": step, "file": slot, "world_size": world_size, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "rng": rng}, path)
        mlflow.log_artifact(str(path), FOLDER)
        (Path(scratch) / LATEST).write_text(json.dumps({"step": step, "file": slot}))
        mlflow.log_artifact(str(Path(scratch) / LATEST), FOLDER)  # only once the slot is whole
    return slot


def resumable(client: MlflowClient, dataset_hash: str, config: TrainConfig) -> str | None:
    """The newest unfinished training run of this configuration and dataset that has a checkpoint."""
    runs = client.search_runs(
        [tracking.experiment_id(client)],
        filter_string=(f"tags.`{tracking.TAG_STAGE}` = 'train' and tags.`{tracking.TAG_DATASET}` = '{dataset_hash}' "
                       f"and tags.`{TAG_TRAIN_CONFIG}` = '{config_digest(config)}' and attributes.status != 'FINISHED'"),
        order_by=["attributes.start_time DESC"],
    )
    for run in runs:
        if any(Path(a.path).name == LATEST for a in client.list_artifacts(run.info.run_id, FOLDER)):
            return run.info.run_id
    return None


def load(run_id: str) -> dict:
    """The newest checkpoint of a run: its step, file, world size, model, optimiser and scheduler states, RNG states."""
    with tempfile.TemporaryDirectory(prefix="mlops-checkpoint-") as scratch:
        latest = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"{FOLDER}/{LATEST}", dst_path=scratch)
        slot = json.loads(Path(latest).read_text())["file"]
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"{FOLDER}/{slot}", dst_path=scratch)
        return torch.load(path, map_location="cpu", weights_only=True)
