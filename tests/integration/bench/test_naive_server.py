"""The benchmark's naive server (a subprocess): one question at a time, answered like the model."""

from __future__ import annotations

import asyncio
import sys

from mlops.bench.run import _http_level, _process
from mlops.triton.server import free_ports
from support.package import QA_MODEL


def test_naive_server_answers_one_question_at_a_time_like_the_model(qa_repository, tmp_path):
    port = free_ports(1)[0]
    folder = qa_repository / QA_MODEL / "1"
    command = [sys.executable, "-m", "mlops.bench.naive_server", str(folder), str(port)]
    with _process("naive server", command, tmp_path / "naive.log", f"http://127.0.0.1:{port}/"):
        result = asyncio.run(_http_level(f"http://127.0.0.1:{port}/", ["How do I pad a batch?", "set the seed"], 4, 12))
    assert (result.requests, result.failures) == (12, 0)
