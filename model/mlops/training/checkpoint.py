"""Checkpoints of a training run in its MLflow artifacts, so a killed run continues where it stopped.

A checkpoint holds the model, the optimiser, the scheduler, fp16's grad scaler, the step, the training seconds so far and every rank's
RNG state (dropout); the data order needs none, since each epoch's order comes from the seed. Two files take turns
(``checkpoint/a.pt``, ``b.pt``) and ``checkpoint/latest.json`` names the newest whole one, so a kill while one
uploads leaves the other in use. A finished run's checkpoints are deleted: nothing resumes a finished run.

Resuming considers one run only: the newest training run of the same configuration (its digest, the checkpoint
interval left out), dataset, commit, process count and resume key. A key (the workflow's uid in Argo) keeps two
trainings of one configuration from taking over each other's run; a run whose trainer still lives on this host is
never taken over.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Literal, NamedTuple

import mlflow
import torch
import torch.distributed as dist
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient

from mlops.core.errors import MlopsError
from mlops.lifecycle import tracking
from mlops.training import rng
from mlops.training.config import TrainConfig
from mlops.training.strategy import Parallel

FOLDER = "checkpoint"
SLOTS = ("a.pt", "b.pt")
LATEST = "latest.json"
TAG_TRAIN_CONFIG = "mlops.train_config"  # the digest resuming matches on
TAG_RESUME_KEY = "mlops.resume_key"  # given by whoever may retry the training (Argo: the workflow's uid)
TAG_TRAINER = "mlops.trainer"  # host:pid of the process that logs the run, so a live one is never taken over
TAG_RESUMED = "mlops.resumed_at"  # the steps a run was resumed at, comma-separated


def config_digest(config: TrainConfig) -> str:
    return hashlib.sha256(config.model_dump_json(exclude={"checkpoint_every"}).encode()).hexdigest()[:16]


def run_tags(config: TrainConfig, key: str | None) -> dict[str, str]:
    """The tags a new training run gets for resuming to find it (with the stage, dataset and commit tags)."""
    return {TAG_TRAIN_CONFIG: config_digest(config), TAG_TRAINER: _this_process(), **({TAG_RESUME_KEY: key} if key else {})}


def _this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive_here(trainer: str) -> bool:
    """Whether ``host:pid`` names a live process of this host other than this one (a pid reused by another
    program does not count where /proc tells)."""
    host, _, pid = trainer.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    return not cmdline.exists() or b"mlops" in cmdline.read_bytes()


class Decision(NamedTuple):
    action: Literal["fresh", "resume", "done"]
    run_id: str | None
    reason: str


def decide(client: MlflowClient, dataset_hash: str, config: TrainConfig, world_size: int, key: str | None) -> Decision:
    """What ``--resume`` does: continue the newest matching run from its checkpoint, report it if it finished under
    this key (a retried step whose first attempt got that far), or train afresh; marks an unfinished run it will
    never continue (no checkpoint) KILLED."""
    runs = client.search_runs(
        [tracking.experiment_id(client)],
        filter_string=(f"tags.`{tracking.TAG_STAGE}` = 'train' and tags.`{tracking.TAG_DATASET}` = '{dataset_hash}' "
                       f"and tags.`{TAG_TRAIN_CONFIG}` = '{config_digest(config)}' "
                       f"and tags.`{tracking.TAG_GIT_SHA}` = '{tracking.git_sha()}' and params.world_size = '{world_size}'"),
        order_by=["attributes.start_time DESC"],
        max_results=200,
    )
    matching = [r for r in runs if r.data.tags.get(TAG_RESUME_KEY, "") == (key or "")]
    what = f"this configuration, dataset, commit, process count{' and key' if key else ''}"
    if not matching:
        return Decision("fresh", None, f"no earlier run of {what}")
    newest = matching[0]
    run_id, status = newest.info.run_id, newest.info.status
    if status == "FINISHED":
        if key:
            return Decision("done", run_id, f"run {run_id} of {what} has finished already")
        return Decision("fresh", None, f"the newest run of {what}, {run_id}, has finished")
    if status == "KILLED":
        return Decision("fresh", None, f"the newest run of {what}, {run_id}, was given up")
    if _alive_here(newest.data.tags.get(TAG_TRAINER, "")):
        raise MlopsError(f"run {run_id} is still being trained by process {newest.data.tags[TAG_TRAINER]}; "
                         "let it finish or stop it before resuming it")
    if not _has_checkpoint(client, run_id):
        client.set_terminated(run_id, "KILLED")
        return Decision("fresh", None, f"the newest run of {what}, {run_id}, has no checkpoint (now marked KILLED)")
    return Decision("resume", run_id, f"resuming run {run_id}")


def _has_checkpoint(client: MlflowClient, run_id: str) -> bool:
    return any(Path(a.path).name == LATEST for a in client.list_artifacts(run_id, FOLDER))


def claim(client: MlflowClient, run: Run, step: int) -> None:
    """Record on a resumed run that this process logs it now, and at which step it took over."""
    earlier = run.data.tags.get(TAG_RESUMED)
    client.set_tag(run.info.run_id, TAG_TRAINER, _this_process())
    client.set_tag(run.info.run_id, TAG_RESUMED, f"{earlier},{step}" if earlier else str(step))


def _rng_states(world_size: int) -> list[list[torch.Tensor]]:
    """Every rank's CPU (and, on a GPU, CUDA) generator state, in rank order; a collective call with several processes."""
    if world_size == 1:
        return [rng.state()]
    gathered: list = [None] * world_size
    dist.all_gather_object(gathered, rng.state())
    return gathered


def save(step: int, seconds: float, parallel: Parallel, optimizer, scheduler, scaler, rank: int, world_size: int,
         previous: str | None) -> str | None:
    """Log a checkpoint into the active run (rank 0; every rank must call it) and return the file it went to."""
    model_state, optimizer_state = parallel.state(optimizer)  # whole, whatever the strategy: gathered from the shards
    generators = _rng_states(world_size)
    if rank != 0:
        return None
    slot = SLOTS[1] if previous == SLOTS[0] else SLOTS[0]
    with tempfile.TemporaryDirectory(prefix="mlops-checkpoint-") as scratch:
        path = Path(scratch) / slot
        torch.save({"step": step, "seconds": seconds, "file": slot, "world_size": world_size, "model": model_state,
                    "optimizer": optimizer_state, "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "rng": generators}, path)
        mlflow.log_artifact(str(path), FOLDER)
        (Path(scratch) / LATEST).write_text(json.dumps({"step": step, "file": slot}))
        mlflow.log_artifact(str(Path(scratch) / LATEST), FOLDER)  # only once the slot is whole
    return slot


def load(run_id: str, slot: str | None = None) -> dict:
    """A run's newest whole checkpoint: the one ``latest.json`` names, else the other file if that one is torn or
    from another step (it is then the one before). ``slot`` loads that file only (ranks after rank 0 chose)."""
    with tempfile.TemporaryDirectory(prefix="mlops-checkpoint-") as scratch:
        if slot:
            try:
                return _read(run_id, slot, scratch)
            except (MlflowException, OSError, RuntimeError, EOFError) as exc:
                raise MlopsError(f"run {run_id}'s checkpoint {slot} could not be read: {str(exc).splitlines()[0]}") from None
        latest = json.loads(Path(_download(run_id, LATEST, scratch)).read_text())
        other = SLOTS[1] if latest["file"] == SLOTS[0] else SLOTS[0]
        for candidate, fits in ((latest["file"], lambda s: s == latest["step"]), (other, lambda s: s < latest["step"])):
            try:
                state = _read(run_id, candidate, scratch)
            except (MlflowException, OSError, RuntimeError, KeyError, EOFError):
                continue
            if fits(state["step"]):
                return state
        raise MlopsError(f"run {run_id}'s checkpoints are unreadable; train afresh (without --resume)")


def _download(run_id: str, name: str, scratch: str) -> str:
    return mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"{FOLDER}/{name}", dst_path=scratch)


def _read(run_id: str, slot: str, scratch: str) -> dict:
    return torch.load(_download(run_id, slot, scratch), map_location="cpu", weights_only=True)


def delete(client: MlflowClient, run_id: str) -> str | None:
    """Delete a finished run's checkpoints (two copies of the model and optimiser); None, or why it could not."""
    try:
        get_artifact_repository(client.get_run(run_id).info.artifact_uri).delete_artifacts(FOLDER)
    except Exception as exc:  # noqa: BLE001 - the run has finished; the files left only cost space
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None
