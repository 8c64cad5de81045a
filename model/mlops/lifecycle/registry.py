"""The MLflow model registry: versions, their tags, and the lifecycle aliases.

``candidate`` marks the version that passed the gate and waits for deployment; ``champion``
marks the one serving: moved locally once Triton's smoke and contract tests pass (`mlops deploy`),
in the cluster only once staging serves it and its smoke test passed (`mlops champion`).
"""

from __future__ import annotations

from pathlib import Path

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pydantic import ValidationError

from mlops.core.errors import MlopsError
from mlops.core.settings import Settings
from mlops.lifecycle import tracking
from mlops.search.settings import RetrievalSettings

CANDIDATE = "candidate"
CHAMPION = "champion"


def by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None  # no such model or alias yet


def get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    try:
        return client.get_model_version(name, version)
    except MlflowException:
        known = [str(v.version) for v in client.search_model_versions(f"name = '{name}'")] if _exists(client, name) else []
        raise MlopsError(
            f"model {name!r} has no version {version!r}; known versions: {', '.join(sorted(known, key=int)) or 'none'}"
        ) from None


def _exists(client: MlflowClient, name: str) -> bool:
    try:
        client.get_registered_model(name)
        return True
    except MlflowException:
        return False


def champion(settings: Settings) -> tuple[MlflowClient, ModelVersion]:
    """The ``champion`` version; a clear error when nothing has been deployed yet."""
    if settings.tracking_uri.startswith("sqlite:") and not Path(settings.tracking_uri.removeprefix("sqlite:///")).is_file():
        raise MlopsError(f"no model has been deployed yet (no MLflow store at {settings.tracking_uri}); run `make pipeline` first")
    client = tracking.configure(settings)
    version = by_alias(client, settings.model_name, CHAMPION)
    if version is None:
        raise MlopsError(f"model {settings.model_name!r} has no champion yet; run `make pipeline` or `mlops deploy` first")
    return client, version


def served_champion(settings: Settings) -> ModelVersion:
    """The champion, which must be in the live Triton repository (where `mlops deploy` puts what passed)."""
    _, version = champion(settings)
    folder = settings.served_folder(version.version)
    if not (folder / "model.py").is_file():
        raise MlopsError(f"the champion (version {version.version}) is not in the live Triton repository {folder.parent}; "
                         f"run `mlops deploy --version {version.version}`")
    return version


def given_or_candidate(client: MlflowClient, name: str, version: str | None) -> ModelVersion:
    """Version ``version``, or the ``candidate`` when none is given."""
    if version is not None:
        return get_version(client, name, version)
    candidate = by_alias(client, name, CANDIDATE)
    if candidate is None:
        raise MlopsError(f"model {name!r} has no 'candidate' version; run `mlops register` or pass --version N")
    return candidate


def register(client: MlflowClient, name: str, run_id: str) -> ModelVersion:
    """Register a run's model if (and only if) it passed the gate, and mark it ``candidate``."""
    run = tracking.get_run(client, run_id)
    gate = run.data.tags.get(tracking.TAG_GATE)
    if gate != "passed":
        reason = run.data.tags.get(tracking.TAG_GATE_REASON, "it has not been evaluated; run `mlops evaluate` first")
        raise MlopsError(f"run {run_id} cannot be registered: gate {gate or 'not run'}: {reason}")
    if not _exists(client, name):
        client.create_registered_model(name, description="Question answering over the Transformers codebase (encoder + index)")
    metrics = {k: f"{v:.4f}" for k, v in run.data.metrics.items() if k.startswith(("test_", "natural_"))}
    tags = {
        "git_sha": run.data.tags.get(tracking.TAG_GIT_SHA, "unknown"),
        "dataset_hash": run.data.tags[tracking.TAG_DATASET],
        tracking.TAG_BM25_WEIGHT: run.data.tags[tracking.TAG_BM25_WEIGHT],
        tracking.TAG_RETRIEVAL: run.data.tags[tracking.TAG_RETRIEVAL],
        **metrics,
    }
    version = client.create_model_version(
        name, source=f"{run.info.artifact_uri}/{tracking.MODEL_ARTIFACT}", run_id=run_id, tags=tags
    )
    client.set_registered_model_alias(name, CANDIDATE, version.version)
    return version


def measured_settings(version: ModelVersion) -> RetrievalSettings:
    """The fusion weight, prior and thesaurus the version was evaluated with, which its export must reproduce."""
    digest = version.tags[tracking.TAG_RETRIEVAL]
    try:
        return RetrievalSettings.model_validate(tracking.load_retrieval_settings(version.run_id, digest))
    except ValidationError as exc:
        raise MlopsError(f"the retrieval settings {digest} of version {version.version} are invalid"
                         f" ({exc.errors()[0]['msg']}); register a newly evaluated run") from None


def promote_champion(client: MlflowClient, name: str, version: str) -> None:
    client.set_registered_model_alias(name, CHAMPION, version)
    candidate = by_alias(client, name, CANDIDATE)
    if candidate is not None and str(candidate.version) == str(version):
        client.delete_registered_model_alias(name, CANDIDATE)  # a candidate waits for `champion`; this one holds it
