"""`mlops bench-providers`: the encoder's ONNX graphs under each ONNX Runtime execution provider and batch size.

For the GPU node: with ``onnxruntime-gpu`` installed, CUDA and TensorRT are measured beside the CPU; a provider this
build lacks is reported as missing, not measured. Questions are the natural ones, repeated to fill each batch.
Prints one line per (variant, provider, batch) and writes ``<reports>/providers.json``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import onnxruntime

from mlops.core.settings import Settings
from mlops.data.eval_sets import load_natural_questions
from mlops.lifecycle import tracking
from mlops.lifecycle.registry import champion
from mlops.search.onnx_encoder import ONE_PER_RUN, VARIANT_FILES, OnnxEncoder

PROVIDERS = ("CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider")
BATCHES = (1, 8, 32, 64)
ROUNDS = 5


def bench_providers(settings: Settings, echo=print) -> dict:
    client, version = champion(settings)
    onnx_dir = tracking.download(client, version.run_id, tracking.ONNX_ARTIFACT, settings.cache_dir)
    natural = load_natural_questions(settings.natural_questions) if settings.natural_questions else load_natural_questions()
    questions = [q.question for q in natural]
    available = onnxruntime.get_available_providers()
    report = {"model_version": str(version.version), "onnxruntime": onnxruntime.__version__, "device": onnxruntime.get_device(),
              "cpu_count": os.cpu_count(), "available": available, "measured": []}
    echo(f"ONNX Runtime {onnxruntime.__version__} ({onnxruntime.get_device()}), providers here: {', '.join(available)}")
    for provider in PROVIDERS:
        if provider not in available:
            echo(f"  {provider}: not in this onnxruntime build; skipped")
            continue
        # Dynamic INT8 is a CPU technique (its integer kernels run on the CPU), and it encodes one question per run.
        for variant in VARIANT_FILES if provider == "CPUExecutionProvider" else ("onnx-fp32",):
            encoder = OnnxEncoder(onnx_dir, variant, providers=[provider])
            if encoder.session.get_providers()[0] != provider:
                echo(f"  {variant} {provider}: the session fell back to {encoder.session.get_providers()[0]}; skipped")
                continue
            for batch in BATCHES if variant not in ONE_PER_RUN else (1,):
                texts = (questions * (batch // len(questions) + 1))[:batch]
                encoder.encode_queries(texts, batch_size=batch)  # warm-up: TensorRT builds its engine here
                started = time.perf_counter()
                for _ in range(ROUNDS):
                    encoder.encode_queries(texts, batch_size=batch)
                seconds = (time.perf_counter() - started) / ROUNDS
                row = {"variant": variant, "provider": provider, "batch": batch, "ms_per_batch": round(seconds * 1000, 2),
                       "questions_per_second": round(batch / seconds, 1)}
                report["measured"].append(row)
                echo(f"  {variant:<10} {provider:<26} batch {batch:>3}: {row['ms_per_batch']:>8.2f} ms, "
                     f"{row['questions_per_second']:>8.1f} q/s")
    out = Path(settings.reports_dir) / "providers.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    echo(f"wrote {out}")
    return report
