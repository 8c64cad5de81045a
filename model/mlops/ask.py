"""Answer a question with the current ``champion``, in process (no server needed)."""

from __future__ import annotations

import os
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from mlops import registry, tracking
from mlops.errors import MlopsError
from mlops.export import export_version
from mlops.limits import MAX_QUESTION_CHARS
from mlops.retrieval import Retriever
from mlops.settings import Settings


def check_question(question: str) -> str:
    question = question.strip()
    if not question:
        raise MlopsError('the question is empty; ask something, e.g. mlops ask "How do I save a model?"')
    if len(question) > MAX_QUESTION_CHARS:
        raise MlopsError(f"the question has {len(question)} characters; keep it under {MAX_QUESTION_CHARS}")
    return question


def champion(settings: Settings) -> tuple[MlflowClient, ModelVersion]:
    """The registry's ``champion`` version; a clear error when nothing has been deployed yet."""
    if settings.tracking_uri.startswith("sqlite:") and not Path(settings.tracking_uri.removeprefix("sqlite:///")).is_file():
        raise MlopsError(f"no model has been deployed yet (no MLflow store at {settings.tracking_uri}); run `make pipeline` first")
    client = tracking.configure(settings)
    version = registry.by_alias(client, settings.model_name, registry.CHAMPION)
    if version is None:
        raise MlopsError(f"model {settings.model_name!r} has no champion yet; run `make pipeline` or `mlops deploy` first")
    return client, version


def champion_retriever(settings: Settings) -> tuple[Retriever, str]:
    """The champion's exported folder (the live Triton repository's, or a fresh export into the cache)."""
    client, champion_version = champion(settings)
    folder = settings.triton_repository / settings.model_name / str(champion_version.version)
    if not (folder / "retrieval.json").is_file():
        exports = settings.cache_dir / "exports"
        folder = exports / settings.model_name / str(champion_version.version)
        if not (folder / "retrieval.json").is_file():
            export_version(settings, client, champion_version, exports, echo=lambda *_: None)
    return Retriever.load(folder), str(champion_version.version)


def ask(settings: Settings, question: str, top_k: int = 5) -> tuple[list[dict], str]:
    """The best ``top_k`` answers and the champion version that gave them."""
    question = check_question(question)
    if not 1 <= top_k <= 50:
        raise MlopsError(f"--top-k must be between 1 and 50, got {top_k}")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    retriever, version = champion_retriever(settings)
    return retriever.search([question], top_k)[0], version
