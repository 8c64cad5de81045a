"""Where local state lives and which MLflow store is used.

Everything the pipeline writes locally lives under one folder, ``.mlops/`` in the working
directory by default (``MLOPS_HOME`` moves it). ``MLFLOW_TRACKING_URI`` points MLflow at a
server (the cluster); otherwise a SQLite store under that folder is used. ``DATABASE_URL`` does
the same for the feedback store (PostgreSQL in the cluster, SQLite under that folder here).
``MLOPS_MODEL_STORE`` (default ``s3://models``) is the bucket `mlops publish` uploads to.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, ConfigDict

DEFAULT_MODEL_NAME = "transformers-qa"
EXPERIMENT_NAME = "transformers-qa"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    home: Path
    tracking_uri: str
    model_name: str = DEFAULT_MODEL_NAME
    natural_questions: Path | None = None  # None: the set shipped in mlops/data/eval_sets/
    natural_dev: Path | None = None  # None: the development set shipped in mlops/data/eval_sets/
    database_url: str | None = None  # feedback store; None: SQLite at <home>/feedback.db
    model_store: str = "s3://models"  # where `mlops publish` puts versions for the cluster's Triton

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(os.environ.get("MLOPS_HOME", ".mlops")).resolve()
        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"
        natural = os.environ.get("MLOPS_NATURAL_QUESTIONS")
        natural_dev = os.environ.get("MLOPS_NATURAL_DEV")
        return cls(
            home=home,
            tracking_uri=uri,
            model_name=os.environ.get("MLOPS_MODEL_NAME", DEFAULT_MODEL_NAME),
            natural_questions=Path(natural) if natural else None,
            natural_dev=Path(natural_dev) if natural_dev else None,
            database_url=os.environ.get("DATABASE_URL") or None,
            model_store=os.environ.get("MLOPS_MODEL_STORE") or "s3://models",
        )

    @cached_property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @cached_property
    def artifacts_dir(self) -> Path:
        """MLflow artifact root when the local SQLite store is used."""
        return self.home / "mlartifacts"

    @cached_property
    def models_dir(self) -> Path:
        """Scratch space for trained models before they are logged to MLflow."""
        return self.home / "models"

    @cached_property
    def cache_dir(self) -> Path:
        """Corpus embeddings keyed by (model fingerprint, corpus hash); safe to delete."""
        return self.home / "cache"

    @cached_property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @cached_property
    def triton_dir(self) -> Path:
        return self.home / "triton"

    @cached_property
    def triton_repository(self) -> Path:
        """The live Triton model repository: only versions that passed deploy checks land here."""
        return self.triton_dir / "repository"

    def served_folder(self, version: str | int) -> Path:
        """A version's folder in the live Triton repository (what `mlops serve` and the benchmark load)."""
        return self.triton_repository / self.model_name / str(version)

    @cached_property
    def exports_dir(self) -> Path:
        """Versions exported for in-process answers (`mlops ask`) when the live repository does not hold them."""
        return self.cache_dir / "exports"

    @cached_property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @cached_property
    def feedback_url(self) -> str:
        """SQLAlchemy URL of the feedback store."""
        return self.database_url or f"sqlite:///{self.home / 'feedback.db'}"
