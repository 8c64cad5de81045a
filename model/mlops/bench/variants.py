"""Every encoder variant of the champion, served the same way, so `mlops bench` compares them side by side.

Each variant is the champion's export (corpus, index, fusion, prior, highlight sentences) with its own question encoder: the torch model
and the ONNX graphs its run logged when evaluate measured them. The variants go into a Triton repository of their
own (``<logs>/bench/variants``), one model per variant; the live repository keeps only the champion.
"""

from __future__ import annotations

from pathlib import Path

from mlflow.entities.model_registry import ModelVersion

from mlops.core.settings import Settings
from mlops.evaluation.evaluate import search_throughput
from mlops.lifecycle import tracking
from mlops.lifecycle.export import write_model_version
from mlops.search.encoder import Encoder
from mlops.search.onnx_encoder import OnnxEncoder
from mlops.search.retriever import Retriever
from mlops.search.settings import ENCODER_VARIANTS, TORCH_FP32


def variant_models(settings: Settings, version: ModelVersion, repository: Path, questions: list[str], echo=print) -> dict[str, dict]:
    """Write one Triton model per variant into ``repository``; per variant, its model name and in-process bound."""
    client = tracking.configure(settings)
    served = Retriever.load(settings.served_folder(version.version))
    model_dir = tracking.download(client, version.run_id, tracking.MODEL_ARTIFACT, settings.cache_dir)
    onnx_dir = tracking.download(client, version.run_id, tracking.ONNX_ARTIFACT, settings.cache_dir)
    models = {}
    for variant in ENCODER_VARIANTS:
        encoder = Encoder(model_dir) if variant == TORCH_FP32 else OnnxEncoder(onnx_dir, variant)
        retriever = Retriever.from_settings(served.settings.model_copy(update={"encoder_variant": variant}), encoder,
                                            served.symbols, served.embeddings, served.sentences)
        bound = search_throughput(retriever, questions * max(1, 256 // len(questions)))
        name = f"{settings.model_name}-{variant}"
        write_model_version(repository, name, "1", retriever)
        models[variant] = {"model": name, "bound_qps": round(bound, 1)}
        echo(f"  bound    {variant:<10} in-process batched: {bound:.1f} q/s")
    return models
