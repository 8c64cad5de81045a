"""The encoder run by ONNX Runtime: the same tokenizer, mean pooling and normalisation as ``Encoder``, without torch.

A folder holds the fine-tuned encoder's tokenizer and one ONNX graph per variant (``VARIANT_FILES``), written by
:mod:`mlops.lifecycle.onnx_export`. Questions are what it encodes: passage embeddings are computed once, by the torch
encoder, when a version is exported, so every variant searches the same index.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from functools import cached_property, partial
from pathlib import Path

import numpy as np
import onnxruntime
from tokenizers import Tokenizer

from mlops.core.errors import MlopsError
from mlops.search.settings import QUERY_BATCH, QUERY_MAX_TOKENS

VARIANT_FILES = {"onnx-fp32": "model-optimized.onnx", "onnx-int8": "model-int8.onnx"}
# Dynamic INT8 quantises each run's activations with one scale per tensor, so a question's vector would depend on the
# other questions of its batch (by up to 0.03 per component): that variant encodes one question per run.
ONE_PER_RUN = frozenset({"onnx-int8"})
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "config.json")


def execution_providers(preferred: Sequence[str] | None = None) -> list[str]:
    """The providers to ask for, best first, among those this onnxruntime build has (CPU is always last)."""
    available = onnxruntime.get_available_providers()
    wanted = preferred or ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
    return [p for p in wanted if p in available] or ["CPUExecutionProvider"]


def available_cores(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The cores this process may run on, at most its cgroup's CPU quota (a pod's CPU limit) rounded up."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()
        return max(1, min(cores, -(-int(quota) // int(period))))
    except (OSError, ValueError):  # no cgroup v2 file, or "max": no quota
        return cores


class OnnxEncoder:
    """``threads``: the cores it may use (default: ONNX Runtime's, every core). Each run gets them; a
    one-question-per-run variant with more than one question to encode instead runs that many questions at once, one
    thread each: a question is a small run, and on 2 cores two single-threaded runs at once (ONNX Runtime's ``Run`` is
    thread-safe) encode 1.18x the questions of one run over both, while a lone question is faster over both
    (docs/experiments.md, 2026-12-07). Batched runs are big enough to spread: for them the two ways measured the same."""

    def __init__(self, folder: Path, variant: str, threads: int | None = None, providers: Sequence[str] | None = None):
        if variant not in VARIANT_FILES:
            raise MlopsError(f"unknown ONNX encoder variant {variant!r}; choose one of {', '.join(VARIANT_FILES)}")
        self.path = Path(folder)
        self.variant = variant
        graph = self.path / VARIANT_FILES[variant]
        if not graph.is_file() or not (self.path / "tokenizer.json").is_file():
            raise MlopsError(f"no {variant} encoder in {self.path} ({graph.name} or tokenizer.json missing); export it again")
        self.graph, self.providers = graph, execution_providers(providers)
        self.concurrent_runs = (threads or available_cores()) if variant in ONE_PER_RUN else 1
        self.session = self._session(threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        config = self.path / "tokenizer_config.json"
        pad = json.loads(config.read_text(encoding="utf-8")).get("pad_token", "[PAD]") if config.is_file() else "[PAD]"
        self.pad = (pad, self.tokenizer.token_to_id(pad) or 0)

    def _session(self, threads: int | None) -> onnxruntime.InferenceSession:
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        return onnxruntime.InferenceSession(str(self.graph), options, providers=self.providers)

    @cached_property
    def single_threaded(self) -> onnxruntime.InferenceSession:
        """The session the concurrent runs share (made on first use: a Triton instance never needs it)."""
        return self.session if self.session.get_session_options().intra_op_num_threads == 1 else self._session(1)

    def _tokenize(self, texts: Sequence[str], max_tokens: int) -> dict[str, np.ndarray]:
        """What the Transformers fast tokenizer gives with truncation at ``max_tokens`` and padding to the longest."""
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.enable_padding(pad_token=self.pad[0], pad_id=self.pad[1])
        encodings = self.tokenizer.encode_batch(list(texts))
        batch = {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                 "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                 "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64)}
        return {name: batch[name] for name in self.input_names}

    def encode(self, texts: Sequence[str], max_tokens: int, batch_size: int = 64, progress=None) -> np.ndarray:
        """Embeddings as float32 rows, in input order; each text's vector is the same whatever batch it comes in."""
        batch_size = 1 if self.variant in ONE_PER_RUN else batch_size
        order = np.argsort([len(t) for t in texts], kind="stable")
        groups = [order[start:start + batch_size] for start in range(0, len(texts), batch_size)]
        # Tokenised here, in the calling thread: the tokenizer's padding and truncation settings are shared state.
        batches = [self._tokenize([texts[i] for i in idx], max_tokens) for idx in groups]
        out = None
        workers = min(self.concurrent_runs, len(batches))
        with ThreadPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
            embed = partial(self._embed, self.single_threaded if pool else self.session)
            for idx, pooled in zip(groups, (pool.map if pool else map)(embed, batches), strict=True):
                if out is None:
                    out = np.empty((len(texts), pooled.shape[1]), dtype=np.float32)
                out[idx] = pooled
                if progress:
                    progress(len(idx))
        return out if out is not None else np.empty((0, 0), dtype=np.float32)

    @staticmethod
    def _embed(session: onnxruntime.InferenceSession, batch: dict[str, np.ndarray]) -> np.ndarray:
        """Mean-pooled, normalised embeddings of one tokenised batch."""
        hidden = session.run(None, batch)[0]
        mask = batch["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def encode_queries(self, questions: Sequence[str], batch_size: int = QUERY_BATCH) -> np.ndarray:
        return self.encode(questions, QUERY_MAX_TOKENS, batch_size=batch_size)

    def save(self, path: Path) -> None:
        """The tokenizer and this variant's graph (no torch weights: the export serves ONNX only)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for name in (*TOKENIZER_FILES, VARIANT_FILES[self.variant]):
            if (self.path / name).is_file():
                shutil.copy2(self.path / name, path / name)
