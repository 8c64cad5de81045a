"""Export a registered model version as a Triton model-repository version folder.

``<repository>/<name>/config.pbtxt`` and ``<repository>/<name>/<version>/``: the python-backend
adapter (``model.py``) plus everything ``Retriever.load`` needs (encoder, corpus, embeddings,
and the fusion weight, prior and thesaurus the version was evaluated with). Built only from what
MLflow holds, so any machine with access to the tracking server can export it, and exports it
the same whatever its checkout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient
from pydantic import ValidationError

from mlops import tracking
from mlops.data import dataset
from mlops.encoder import Encoder
from mlops.errors import MlopsError
from mlops.retrieval import RetrievalSettings, Retriever, corpus_embeddings, shipped_settings
from mlops.settings import Settings
from mlops.triton.config import render_model_config

# The python-backend adapter; copied, not imported (it needs Triton's stub to import).
ADAPTER = Path(__file__).parent / "triton" / "python_model.py"


def export_version(settings: Settings, client: MlflowClient, version: ModelVersion, repository: Path, echo=print) -> Path:
    """Write ``repository/<name>/<version>/`` and the model's ``config.pbtxt``; returns the version folder."""
    model_dir = tracking.download(client, version.run_id, tracking.MODEL_ARTIFACT, settings.cache_dir)
    data_dir = tracking.download(client, version.run_id, tracking.DATASET_ARTIFACT, settings.cache_dir)
    symbols = dataset.load_corpus(data_dir)
    encoder = Encoder(model_dir)
    echo(f"  exporting version {version.version}: encoding {len(symbols)} passages (cached when evaluate already did)")
    embeddings = corpus_embeddings(encoder, symbols, settings.cache_dir)
    retriever = version_settings(version, echo).retriever(encoder, symbols, embeddings)
    return write_model_version(repository, version.name, str(version.version), retriever, manifest={
        "run_id": version.run_id,
        "dataset_hash": version.tags.get("dataset_hash"),
        "git_sha": version.tags.get("git_sha"),
    })


def version_settings(version: ModelVersion, echo=print) -> RetrievalSettings:
    """The fusion weight, prior and thesaurus the version was evaluated with, which its export must reproduce."""
    digest = version.tags.get(tracking.TAG_RETRIEVAL)
    if digest is None:  # registered before evaluate logged its settings: the closest is this checkout's
        echo(f"  version {version.version} predates logged retrieval settings: using its fusion weight with this checkout's"
             " prior and thesaurus")
        return shipped_settings(float(version.tags[tracking.TAG_BM25_WEIGHT]))
    try:
        return RetrievalSettings.model_validate(tracking.load_retrieval_settings(version.run_id, digest))
    except ValidationError as exc:
        raise MlopsError(f"the retrieval settings {digest} of version {version.version} are invalid"
                         f" ({exc.errors()[0]['msg']}); register a newly evaluated run") from None


def write_model_version(repository: Path, name: str, version: str, retriever: Retriever, manifest: dict | None = None) -> Path:
    """``repository/<name>/<version>/`` (retriever + adapter) and ``repository/<name>/config.pbtxt``."""
    model_root = repository / name
    folder = model_root / version
    shutil.rmtree(folder, ignore_errors=True)
    retriever.save(folder, manifest={"model_name": name, "model_version": version, **(manifest or {})})
    shutil.copyfile(ADAPTER, folder / "model.py")
    (model_root / "config.pbtxt").write_text(render_model_config(name), encoding="utf-8")
    return folder
