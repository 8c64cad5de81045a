"""Triton python-backend adapter; export copies this file as ``<repo>/<name>/<version>/model.py``.

It stays thin: the model is whatever :class:`mlops.search.retriever.Retriever` loads from the version folder,
so Triton and the in-process pipeline answer with the same code. It runs inside Triton's stub, where
``triton_python_backend_utils`` exists; nothing else in ``mlops`` imports it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils
from threadpoolctl import threadpool_limits

from mlops.core.inputs import DEFAULT_TOP_K, check_question, check_top_k
from mlops.core.wire import ANSWERS, QUESTION, TOP_K
from mlops.search.retriever import Retriever


def _parse(request: Any) -> list[tuple[str, int]]:
    """(question, top_k) for each row of one request; ValueError names what is wrong."""
    raw = pb_utils.get_input_tensor_by_name(request, QUESTION).as_numpy().reshape(-1)
    try:
        questions = [q.decode("utf-8") if isinstance(q, bytes) else str(q) for q in raw]
    except UnicodeDecodeError as e:
        raise ValueError(f"{QUESTION} is not UTF-8 text ({e})") from None
    top_k_tensor = pb_utils.get_input_tensor_by_name(request, TOP_K)
    top_ks = ([DEFAULT_TOP_K] * len(questions) if top_k_tensor is None
              else [int(k) for k in top_k_tensor.as_numpy().reshape(-1)])
    if len(top_ks) != len(questions):
        raise ValueError(f"{TOP_K} has {len(top_ks)} values for {len(questions)} questions")
    return [(check_question(question), check_top_k(top_k)) for question, top_k in zip(questions, top_ks, strict=True)]


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        parameters = json.loads(args["model_config"]).get("parameters", {})
        threads = parameters.get("intra_op_threads", {}).get("string_value")
        # Triton's "model_repository" is this model's folder; the version folder holds the retriever. Threads are
        # per instance: instances x threads = cores (see config.py), for torch or ONNX Runtime alike.
        version_dir = Path(args["model_repository"]) / args["model_version"]
        if threads:
            # Every native pool loaded so far (numpy's OpenBLAS, torch's OpenMP) at the instance's threads: OpenBLAS
            # would start a thread per core for the dense scores, whose idle spinning takes the cores the other
            # instances' encoders run on (a question cost twice the CPU: docs/experiments.md, 2026-12-07).
            threadpool_limits(int(threads))
        self.retriever = Retriever.load(version_dir, threads=int(threads) if threads else None)

    def execute(self, requests: list[Any]) -> list[Any]:
        # Bad input fails only its own request; the rest of the batch is still answered.
        parsed: list[list[tuple[str, int]] | pb_utils.TritonError] = []
        for request in requests:
            try:
                parsed.append(_parse(request))
            except ValueError as e:
                parsed.append(pb_utils.TritonError(str(e)))
        rows = [row for item in parsed if isinstance(item, list) for row in item]
        # One reply call over every question of every request: one batched encode.
        results = iter(self.retriever.reply([q for q, _ in rows], top_k=max(k for _, k in rows)) if rows else [])
        responses = []
        for item in parsed:
            if isinstance(item, pb_utils.TritonError):
                responses.append(pb_utils.InferenceResponse(error=item))
                continue
            replies = [next(results) for _ in item]
            answers = [json.dumps({**r, "answers": r["answers"][:top_k]}).encode("utf-8") for r, (_, top_k) in zip(replies, item, strict=True)]
            tensor = pb_utils.Tensor(ANSWERS, np.array(answers, dtype=np.object_).reshape(-1, 1))
            responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
        return responses
