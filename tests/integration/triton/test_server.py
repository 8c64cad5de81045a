"""The real tritonserver binary from nvidia-pytriton, on tiny python-backend models written into tmp_path."""

from __future__ import annotations

import json
import os
import socket
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from mlops.core.errors import MlopsError
from mlops.triton import server as triton_server
from mlops.triton.client import TritonQAClient
from mlops.triton.config import render_model_config
from mlops.triton.server import TritonServer, find_tritonserver, prepare_backend_dir, relevant_log_line

ECHO_MODEL = """
import json
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            questions = pb_utils.get_input_tensor_by_name(request, "QUESTION").as_numpy().reshape(-1)
            answers = [json.dumps([q.decode().upper()]).encode() for q in questions]
            tensor = pb_utils.Tensor("ANSWERS", np.array(answers, dtype=np.object_).reshape(-1, 1))
            responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
        return responses
"""

BROKEN_MODEL = """
class TritonPythonModel:
    def initialize(self, args):
        raise RuntimeError("tokenizer.json is missing from the version folder")

    def execute(self, requests):
        return []
"""

# The real adapter (mlops.triton.python_model) over a fake mlops.search.retriever that logs each search call.
ADAPTER_MODEL = """
import json
import sys
import types

class Retriever:
    def __init__(self, version_dir):
        self.calls = version_dir / "search_calls.jsonl"

    @classmethod
    def load(cls, version_dir, threads=None):
        from threadpoolctl import threadpool_info

        (version_dir / "threads").write_text(str(threads))
        blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]  # numpy's, in this stub
        (version_dir / "blas_threads").write_text(json.dumps(blas))
        return cls(version_dir)

    def reply(self, questions, top_k):
        with self.calls.open("a") as f:
            f.write(json.dumps({"n": len(questions), "top_k": top_k}) + "\\n")
        # "refuse" in a question: the abstention the real retriever gives below its threshold
        return [{"answers": [] if "refuse" in q else [{"symbol": f"{q}#{i}", "path": "src/x.py", "line": i, "score": 1.0 / (i + 1), "text": q}
                                                    for i in range(top_k)],
                 "abstained": "refuse" in q, "reason": "refused" if "refuse" in q else None, "confidence": 0.5} for q in questions]

fake = types.ModuleType("mlops.search.retriever")
fake.Retriever = Retriever
sys.modules["mlops.search.retriever"] = fake

from mlops.triton.python_model import TritonPythonModel  # noqa: E402,F401
"""


def _write_model(repo: Path, name: str, code: str, max_queue_delay_us: int = 2000) -> None:
    version = repo / name / "1"
    version.mkdir(parents=True)
    (repo / name / "config.pbtxt").write_text(render_model_config(name, max_batch_size=16,
                                                                  max_queue_delay_us=max_queue_delay_us))
    (version / "model.py").write_text(textwrap.dedent(code))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("triton_repo")
    _write_model(root, "echo", ECHO_MODEL)
    _write_model(root, "broken", BROKEN_MODEL)
    # A long queue delay so concurrent requests reliably land in one batch.
    _write_model(root, "qa", ADAPTER_MODEL, max_queue_delay_us=200_000)
    return root


@pytest.fixture(scope="module")
def server(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    triton = TritonServer(repo, tmp_path_factory.mktemp("triton_work"), startup_timeout_s=60)
    try:
        triton.start()
        yield triton
    finally:
        triton.stop()


@pytest.fixture(scope="module")
def qa_model(server: TritonServer) -> str:
    server.load_model("qa")
    return "qa"


@pytest.fixture
def qa_client(server: TritonServer) -> Iterator[TritonQAClient]:
    with TritonQAClient(server.http_url) as client:
        yield client


def _group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        if int(fields[2]) == pgid:  # fields after "(comm)": state, ppid, pgrp
            members.append(int(stat.parent.name))
    return members


def test_server_listens_on_loopback_and_serves_the_echo_model(server: TritonServer, qa_client: TritonQAClient):
    for url in (server.http_url, server.grpc_url, server.metrics_url):
        assert url.startswith("127.0.0.1:")
    server.load_model("echo")
    assert qa_client.is_model_ready("echo")

    questions = [f"question {i}" for i in range(12)]
    answers = qa_client.ask(questions, top_k=1, model_name="echo")

    # the echo model sends bare lists, as versions exported before abstention do: read as replies that answered
    assert answers == [{"answers": [q.upper()], "abstained": False, "reason": None, "confidence": None} for q in questions]
    metrics = urllib.request.urlopen(f"http://{server.metrics_url}/metrics", timeout=10).read().decode()
    assert 'nv_inference_request_success{model="echo",version="1"}' in metrics


def test_adapter_answers_a_batch_with_one_search_and_trims_per_request(qa_model: str, qa_client: TritonQAClient,
                                                                       repo: Path):
    questions = [f"how do I use pipeline {i}" for i in range(7)] + ["please refuse this one"]

    replies = qa_client.ask(questions, top_k=3, model_name=qa_model)

    assert [[a["symbol"] for a in r["answers"]] for r in replies[:-1]] == [[f"{q}#{i}" for i in range(3)] for q in questions[:-1]]
    assert set(replies[0]["answers"][0]) == {"symbol", "path", "line", "score", "text"}
    assert replies[-1] == {"answers": [], "abstained": True, "reason": "refused", "confidence": 0.5}
    calls = [json.loads(line) for line in (repo / "qa" / "1" / "search_calls.jsonl").read_text().splitlines()]
    assert sum(c["n"] for c in calls) == len(questions)
    assert len(calls) < len(questions), "concurrent requests were not batched into one search"
    # The config's intra_op_threads reach the retriever (torch or ONNX Runtime sizes its pool by them).
    assert (repo / "qa" / "1" / "threads").read_text() == "1"  # render_model_config's default
    # And numpy's BLAS pool too: its idle threads would spin on the cores the other instance encodes on.
    assert json.loads((repo / "qa" / "1" / "blas_threads").read_text()) == [1]


def _raw_request(question: str, top_k: int | None) -> list[httpclient.InferInput]:
    text = httpclient.InferInput("QUESTION", [1, 1], "BYTES")
    text.set_data_from_numpy(np.array([[question.encode()]], dtype=np.object_))
    if top_k is None:
        return [text]
    k = httpclient.InferInput("TOP_K", [1, 1], "INT32")
    k.set_data_from_numpy(np.array([[top_k]], dtype=np.int32))
    return [text, k]


def test_adapter_fails_only_the_bad_request_and_defaults_top_k(server: TritonServer, qa_model: str):
    client = httpclient.InferenceServerClient(server.http_url, concurrency=4)
    try:
        pending = [client.async_infer(qa_model, _raw_request(q, k)) for q, k in
                   [("fine", None), ("", 2), ("zero", 0), ("also fine", 2)]]
        default_k, empty, zero, two = pending

        assert len(json.loads(default_k.get_result().as_numpy("ANSWERS")[0, 0])["answers"]) == 5
        assert len(json.loads(two.get_result().as_numpy("ANSWERS")[0, 0])["answers"]) == 2
        with pytest.raises(InferenceServerException, match="the question is empty"):
            empty.get_result()
        with pytest.raises(InferenceServerException, match="top_k must be between 1 and 50, got 0"):
            zero.get_result()
    finally:
        client.close()


def test_client_turns_triton_errors_into_one_line(qa_model: str, qa_client: TritonQAClient):
    with pytest.raises(MlopsError, match="top_k must be between 1 and 50, got 0"):
        qa_client.ask(["x"], top_k=0, model_name=qa_model)
    with pytest.raises(MlopsError, match="'missing'"):
        qa_client.ask(["x"], top_k=1, model_name="missing")
    with TritonQAClient("127.0.0.1:1", timeout_s=5) as unreachable, pytest.raises(MlopsError, match="unreachable"):
        unreachable.ask(["x"], top_k=1, model_name=qa_model)


def test_load_failure_reports_tritons_reason(server: TritonServer):
    with pytest.raises(MlopsError, match="tokenizer.json is missing from the version folder") as raised:
        server.load_model("broken")
    assert "\n" not in str(raised.value)


def test_stop_ends_server_and_stubs_and_is_idempotent(repo: Path, tmp_path: Path):
    triton = TritonServer(repo, tmp_path)
    try:
        triton.start()
        triton.load_model("echo")
        pid = triton.pid
        assert pid is not None
        assert len(_group_members(pid)) >= 2, "expected tritonserver plus the echo model's stub"
    finally:
        triton.stop()
    assert _group_members(pid) == []
    triton.stop()
    assert triton.pid is None


def test_requested_port_in_use_is_named_before_starting(repo: Path, tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(MlopsError, match=f"http port {port} on 127.0.0.1 is not available"):
            TritonServer(repo, tmp_path, http_port=port).start()
    assert not (tmp_path / "tritonserver.log").exists()


def test_early_exit_reports_the_log_line(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    command = TritonServer._command
    monkeypatch.setattr(TritonServer, "_command", lambda self, b: [*command(self, b), "--log-verbose=loud"])
    triton = TritonServer(repo, tmp_path)
    with pytest.raises(MlopsError, match=r"exited with code \d+ during startup: Invalid option value. Got loud \(log: "):
        triton.start()
    assert triton.pid is None


def test_missing_binary_says_what_to_do(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(triton_server, "_pytriton_dir", lambda: None)
    with pytest.raises(MlopsError, match="nvidia-pytriton.*make setup"):
        find_tritonserver()
    monkeypatch.setattr(triton_server, "_pytriton_dir", lambda: tmp_path)
    with pytest.raises(MlopsError, match=f"{tmp_path}/tritonserver/bin/tritonserver is missing"):
        TritonServer(repo, tmp_path / "work").start()


def test_prepare_backend_dir_is_idempotent(tmp_path: Path):
    backend = prepare_backend_dir(tmp_path)
    files = sorted(p.name for p in (backend / "python").iterdir())
    stamps = [os.stat(backend / "python" / f).st_mtime_ns for f in files]
    prepare_backend_dir(tmp_path)

    assert files == ["libtriton_python.so", "triton_python_backend_stub", "triton_python_backend_utils.py"]
    assert [os.stat(backend / "python" / f).st_mtime_ns for f in files] == stamps
    assert os.access(backend / "python" / "triton_python_backend_stub", os.X_OK)


def test_gpu_warnings_are_not_the_reported_error(tmp_path: Path):
    log = tmp_path / "tritonserver.log"
    log.write_text(
        'E1123 11:15:02.897844 2903 server.cc:241] "CudaDriverHelper has not been initialized."\n'
        'E1123 11:15:17.245036 2903 model_lifecycle.cc:642] "failed to load \'qa\': No module named \'x\'\\n\\nAt:\\n"\n'
        "Error: Failed to initialize NVML\n"
        'W1123 11:15:17.247460 2903 metrics.cc:798] "DCGM unable to start: DCGM initialization error"\n'
    )
    assert relevant_log_line(log).endswith("""failed to load 'qa': No module named 'x'""")


def test_model_config_declares_the_qa_contract():
    text = render_model_config("transformers-qa", max_batch_size=32, max_queue_delay_us=500, instance_count=2)
    for expected in ('name: "transformers-qa"', 'backend: "python"', "max_batch_size: 32",
                     'name: "QUESTION"', "TYPE_STRING", 'name: "TOP_K"', "TYPE_INT32", "optional: true",
                     'name: "ANSWERS"', "max_queue_delay_microseconds: 500", "count: 2", "KIND_CPU",
                     'key: "intra_op_threads"', 'string_value: "1"'):
        assert expected in text
    with pytest.raises(MlopsError, match="'bad name'"):
        render_model_config("bad name")
    with pytest.raises(MlopsError, match="max_batch_size must be at least 1, got 0"):
        render_model_config("qa", max_batch_size=0)
    with pytest.raises(MlopsError, match="intra_op_threads must be at least 1, got 0"):
        render_model_config("qa", intra_op_threads=0)
