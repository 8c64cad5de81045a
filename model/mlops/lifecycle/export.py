"""Export a registered model version as a Triton model-repository version folder.

``<repository>/<name>/config.pbtxt`` and ``<repository>/<name>/<version>/``: the python-backend
adapter (``model.py``) plus everything ``Retriever.load`` needs (the question encoder of the variant evaluate chose,
corpus, embeddings, and the fusion weight, prior and thesaurus the version was evaluated with). Built only from what
MLflow holds, so any machine with access to the tracking server can export it, and exports it
the same whatever its checkout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from mlops.core.settings import Settings
from mlops.data import dataset
from mlops.lifecycle import registry, tracking
from mlops.search.encoder import Encoder
from mlops.search.onnx_encoder import OnnxEncoder
from mlops.search.retriever import Retriever, corpus_embeddings, encode_sentences
from mlops.search.settings import TORCH_FP32
from mlops.triton.config import render_model_config

# The python-backend adapter; copied, not imported (it needs Triton's stub to import).
ADAPTER = Path(__file__).parents[1] / "triton" / "python_model.py"


def export_version(settings: Settings, client: MlflowClient, version: ModelVersion, repository: Path, echo=print) -> Path:
    """Write ``repository/<name>/<version>/`` and the model's ``config.pbtxt``; returns the version folder."""
    model_dir = tracking.download(client, version.run_id, tracking.MODEL_ARTIFACT, settings.cache_dir)
    data_dir = tracking.download(client, version.run_id, tracking.DATASET_ARTIFACT, settings.cache_dir)
    symbols = dataset.load_corpus(data_dir)
    encoder = Encoder(model_dir)
    echo(f"  exporting version {version.version}: encoding {len(symbols)} passages (cached when evaluate already did)")
    embeddings = corpus_embeddings(encoder, symbols, settings.cache_dir)
    echo("  encoding the answers' sentences (what a highlight is chosen from)")
    sentences = encode_sentences(encoder, symbols, settings.cache_dir)
    measured = registry.measured_settings(version)
    if measured.encoder_variant != TORCH_FP32:
        echo(f"  serving the {measured.encoder_variant} encoder")
    retriever = Retriever.from_settings(measured, served_query_encoder(settings, client, version, encoder), symbols, embeddings,
                                        sentences)
    return write_model_version(repository, version.name, str(version.version), retriever, manifest={
        "run_id": version.run_id,
        "dataset_hash": version.tags.get("dataset_hash"),
        "git_sha": version.tags.get("git_sha"),
    })



def served_query_encoder(settings: Settings, client: MlflowClient, version: ModelVersion, encoder: Encoder) -> Encoder | OnnxEncoder:
    """What encodes the questions for ``version``: ``encoder`` (its torch model), or the ONNX graph evaluate measured."""
    variant = registry.measured_settings(version).encoder_variant
    if variant == TORCH_FP32:
        return encoder
    return OnnxEncoder(tracking.download(client, version.run_id, tracking.ONNX_ARTIFACT, settings.cache_dir), variant)


def write_model_version(repository: Path, name: str, version: str, retriever: Retriever, manifest: dict | None = None) -> Path:
    """``repository/<name>/<version>/`` (retriever + adapter) and ``repository/<name>/config.pbtxt``."""
    model_root = repository / name
    folder = model_root / version
    shutil.rmtree(folder, ignore_errors=True)
    retriever.save(folder, manifest={"model_name": name, "model_version": version, **(manifest or {})})
    shutil.copyfile(ADAPTER, folder / "model.py")
    (model_root / "config.pbtxt").write_text(render_model_config(name), encoding="utf-8")
    return folder
