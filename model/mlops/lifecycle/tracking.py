"""MLflow set-up and the run look-ups the steps share.

MLflow is the pipeline's memory: a training run holds the model, its dataset hash and, after
evaluation, the gate verdict; later steps find "the latest training run" there rather than in
local files, so the same commands work against the cluster's tracking server.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import TypeVar

import mlflow
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pydantic import BaseModel, ValidationError

from mlops.core.errors import MlopsError
from mlops.core.settings import EXPERIMENT_NAME, Settings

# Run tags written by the steps (and read by the next ones).
TAG_STAGE = "mlops.stage"  # "train" on training runs
TAG_DATASET = "mlops.dataset_hash"
TAG_GATE = "mlops.gate"  # "passed" | "failed", written by evaluate
TAG_GATE_REASON = "mlops.gate_reason"
TAG_GIT_SHA = "mlops.git_sha"
TAG_PARENT = "mlflow.parentRunId"  # MLflow's own: a study's or a search's trainings nest under its run
TAG_BM25_WEIGHT = "mlops.bm25_weight"  # fusion weight chosen by evaluate on the validation split
TAG_RETRIEVAL = "mlops.retrieval_settings"  # digest of the settings evaluate measured, in retrieval/<digest>.json
TAG_ENCODER_VARIANT = "mlops.encoder_variant"  # what encodes the questions where it serves (also in those settings)
MODEL_ARTIFACT = "model"
ONNX_ARTIFACT = "onnx"  # the ONNX variants of the run's encoder and their tokenizer: made and measured by evaluate
DATASET_ARTIFACT = "dataset"
RETRIEVAL_ARTIFACT = "retrieval"
CONFIG_ARTIFACT = "config"  # config/<step>.json: what each step was given
Config = TypeVar("Config", bound=BaseModel)


def git_sha() -> str:
    """The commit the code ran from (GIT_SHA in CI/Argo, else `git rev-parse`), '+dirty' if uncommitted changes."""
    if os.environ.get("GIT_SHA"):
        return os.environ["GIT_SHA"]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True).stdout
        return sha + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def quiet_mlflow() -> None:
    """MLflow's SQLite migrations and deprecation chatter drown the pipeline's own progress lines."""
    for name in ("mlflow", "alembic", "mlflow.store.db.utils", "mlflow.tracking"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="mlflow")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def configure(settings: Settings) -> MlflowClient:
    """Point MLflow at the store and make sure the experiment exists (artifacts under .mlops/ locally)."""
    quiet_mlflow()
    if settings.tracking_uri.startswith("sqlite:"):
        settings.home.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    client = MlflowClient()
    try:
        experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
        if experiment is None:
            location = settings.artifacts_dir.as_uri() if settings.tracking_uri.startswith("sqlite:") else None
            client.create_experiment(EXPERIMENT_NAME, artifact_location=location)
    except MlflowException as exc:
        raise MlopsError(f"MLflow store {settings.tracking_uri} is not usable: {exc.message.splitlines()[0]}") from None
    mlflow.set_experiment(EXPERIMENT_NAME)
    return client


def experiment_id(client: MlflowClient) -> str:
    return client.get_experiment_by_name(EXPERIMENT_NAME).experiment_id


def get_run(client: MlflowClient, run_id: str) -> Run:
    try:
        return client.get_run(run_id)
    except MlflowException:
        raise MlopsError(f"no MLflow run {run_id!r}; list runs with `make mlflow-ui` or use the latest") from None


def latest_training_run(client: MlflowClient) -> Run:
    """The newest finished training that is not part of a study or a search (those nest under another run)."""
    runs = client.search_runs(
        [experiment_id(client)],
        filter_string=f"tags.`{TAG_STAGE}` = 'train' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=200,
    )
    runs = [r for r in runs if TAG_PARENT not in r.data.tags]
    if not runs:
        raise MlopsError("no finished training run in MLflow; run `mlops train` first")
    return runs[0]


def download(client: MlflowClient, run_id: str, artifact_path: str, cache_dir: Path) -> Path:
    """A run's artifact folder on local disk (downloaded once per run into the cache)."""
    local = cache_dir / "runs" / run_id / artifact_path
    if local.exists():
        return local
    local.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=local.parent))  # no half-downloaded folder is ever reused
    try:
        fetched = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path, dst_path=str(staging))
        os.replace(fetched, local)
    except (MlflowException, OSError) as exc:
        raise MlopsError(f"could not fetch artifact {artifact_path!r} of run {run_id}: {str(exc).splitlines()[0]}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return local


def log_retrieval_settings(client: MlflowClient, run_id: str, digest: str, settings: dict) -> None:
    """Store the settings a run was evaluated with under their digest: evaluating the run again adds a file
    and moves the tag, and versions registered before keep pointing at theirs."""
    client.log_dict(run_id, settings, f"{RETRIEVAL_ARTIFACT}/{digest}.json")
    client.set_tag(run_id, TAG_RETRIEVAL, digest)


def log_config(run_id: str, step: str, config: BaseModel) -> None:
    """A step's configuration with its run, as JSON: read back typed by :func:`load_config`."""
    MlflowClient().log_dict(run_id, config.model_dump(mode="json"), f"{CONFIG_ARTIFACT}/{step}.json")


def load_config(run_id: str, step: str, model: type[Config]) -> Config:
    try:
        return model.model_validate(mlflow.artifacts.load_dict(f"runs:/{run_id}/{CONFIG_ARTIFACT}/{step}.json"))
    except (MlflowException, OSError, ValueError) as exc:  # ValidationError is a ValueError
        what = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc).splitlines()[0]
        raise MlopsError(f"run {run_id} has no valid {CONFIG_ARTIFACT}/{step}.json ({what}); is it a {step} run of this code?") from None


def load_retrieval_settings(run_id: str, digest: str) -> dict:
    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{RETRIEVAL_ARTIFACT}/{digest}.json")
    except (MlflowException, OSError, ValueError) as exc:
        raise MlopsError(f"could not read the retrieval settings {digest} of run {run_id}: {str(exc).splitlines()[0]}") from None
