"""The profile's buckets: each sampled stack lands in the serving stage it passes through."""

from __future__ import annotations

import pytest

from mlops.bench import profile


@pytest.mark.parametrize(
    ("stack", "stage"),
    [
        ("TritonPythonModel.execute (model.py:63);Retriever.search (r.py:1);Retriever.rank (r.py:2);Encoder.encode_queries (e.py:3);"
         "Encoder.embed (e.py:4);Module._call_impl (m.py:5)", "encoder forward (torch)"),
        ("TritonPythonModel.execute (model.py:63);Retriever.rank (r.py:2);Retriever.components (r.py:3);"
         "OnnxEncoder.encode_queries (o.py:4);OnnxEncoder.encode (o.py:5);InferenceSession.run (onnxruntime_inference_collection.py:6)",
         "encoder forward (ONNX Runtime)"),
        ("Retriever.rank (r.py:2);OnnxEncoder.encode (o.py:5);OnnxEncoder._tokenize (o.py:6);Tokenizer.encode_batch (t.py:7)",
         "tokenization"),
        ("TritonPythonModel.execute (model.py:63);Retriever.rank (r.py:2);BM25Index.scores (r.py:50)", "BM25"),
        ("TritonPythonModel.execute (model.py:63);Retriever.rank (r.py:2);reduceat (numpy)", "fuse and rank"),
        ("TritonPythonModel.execute (model.py:69);Retriever.answer (r.py:125)", "answers to JSON"),
        ("main (stub.py:1);recv (ipc.py:2)", profile.OUTSIDE),
    ],
)
def test_profile_puts_each_stack_in_the_stage_it_passes_through(stack: str, stage: str):
    assert profile.stage_of(stack) == stage
