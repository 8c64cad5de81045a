"""The benchmark's parts that decide its figures: the load generator, the naive server, the profile buckets."""

from __future__ import annotations

import asyncio
import sys

import pytest

from conftest import QA_MODEL
from mlops.bench import profile
from mlops.bench.load import drive
from mlops.bench.run import _http_level, _process
from mlops.triton.server import free_ports


def test_drive_keeps_the_concurrency_counts_failures_and_measures_latency():
    in_flight = peak = 0

    async def send(question: str) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        if question == "bad":
            raise RuntimeError("server error")

    result = asyncio.run(drive(send, ["a", "b", "c", "bad"], concurrency=4, total=40))
    assert peak == 4
    assert (result.requests, result.failures) == (30, 10)
    assert 10 <= result.p50_ms <= result.p95_ms <= result.p99_ms < 200
    # 40 requests of >= 10 ms, 4 at a time: at most 400 per second
    assert 0 < result.qps <= 400


def test_naive_server_answers_one_question_at_a_time_like_the_model(qa_repository, tmp_path):
    port = free_ports(1)[0]
    folder = qa_repository / QA_MODEL / "1"
    command = [sys.executable, "-m", "mlops.bench.naive_server", str(folder), str(port)]
    with _process("naive server", command, tmp_path / "naive.log", f"http://127.0.0.1:{port}/"):
        result = asyncio.run(_http_level(f"http://127.0.0.1:{port}/", ["How do I pad a batch?", "set the seed"], 4, 12))
    assert (result.requests, result.failures) == (12, 0)


@pytest.mark.parametrize(
    ("stack", "stage"),
    [
        ("TritonPythonModel.execute (model.py:63);Retriever.search (r.py:1);Retriever.rank (r.py:2);Encoder.encode_queries (e.py:3);"
         "Encoder.embed (e.py:4);Module._call_impl (m.py:5)", "encoder forward (torch)"),
        ("TritonPythonModel.execute (model.py:63);Retriever.rank (r.py:2);BM25Index.scores (r.py:50)", "BM25"),
        ("TritonPythonModel.execute (model.py:63);Retriever.rank (r.py:2);reduceat (numpy)", "fuse and rank"),
        ("TritonPythonModel.execute (model.py:69);Retriever.answer (r.py:125)", "answers to JSON"),
        ("main (stub.py:1);recv (ipc.py:2)", profile.OUTSIDE),
    ],
)
def test_profile_puts_each_stack_in_the_stage_it_passes_through(stack: str, stage: str):
    assert profile.stage_of(stack) == stage
