"""The HTTP API over a real Triton serving the real QA model (small corpus): answers, bad input, faults, metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mlops.core.errors import MlopsError
from mlops.search.retriever import Retriever
from mlops.serving.api import RETRY_AFTER_S, ApiConfig, create_app
from mlops.triton.server import TritonServer, free_ports
from support.package import OFF_TOPIC_QUESTION, QA_MODEL, SET_SEED_DOCS_URL, SET_SEED_SOURCE_URL

QUESTION = "How do I make my runs reproducible with a fixed random seed?"


def _client(tmp_path: Path, triton_url: str, **overrides) -> TestClient:
    config = ApiConfig(triton_url=triton_url, model_name=QA_MODEL, database_url=f"sqlite:///{tmp_path / 'feedback.db'}", **overrides)
    return TestClient(create_app(config), raise_server_exceptions=False)


@pytest.fixture
def api(qa_triton: TritonServer, tmp_path: Path) -> Iterator[TestClient]:
    with _client(tmp_path, qa_triton.http_url) as client:
        yield client


def _metric(client: TestClient, name: str, **labels: str) -> float:
    """The value of one sample on /metrics (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))  # exposition sorts labels
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_ask_answers_through_triton_like_the_in_process_model(api: TestClient, qa_repository: Path):
    response = api.post("/v1/ask", json={"question": QUESTION, "top_k": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == "1" and body["latency_ms"] > 0
    local = Retriever.load(qa_repository / QA_MODEL / "1").search([QUESTION], top_k=3)[0]
    assert [a["symbol"] for a in body["answers"]] == [a["symbol"] for a in local]
    assert body["answers"][0]["symbol"] == "minilib.training.set_seed"
    for served, expected in zip(body["answers"], local, strict=True):
        assert served["score"] == pytest.approx(expected["score"], abs=1e-4)
        assert {k: served[k] for k in ("path", "line", "text")} == {k: expected[k] for k in ("path", "line", "text")}
    # the answer view's fields: the highlight is a span of text, the documentation rendered with it marked
    best = body["answers"][0]
    assert best["signature"] == "(*args, **kwargs)" and best["kind"] == "function"
    assert best["text"][best["highlight"]["start"]:best["highlight"]["end"]] == \
        "Sets the random seed of python, numpy and torch so that runs are reproducible."
    assert best["summary"] == best["highlight"]  # here the summary is the sentence that answers
    assert "<mark>Sets the random seed of python, numpy and torch so that runs are reproducible.</mark>" in best["html"]
    assert "<script>" not in best["html"] and best["example"] == "from minilib.training import set_seed\nset_seed(42)"
    assert (best["source_url"], best["docs_url"]) == (SET_SEED_SOURCE_URL, SET_SEED_DOCS_URL)
    assert "docstring" not in best  # the raw docstring stays between Triton and the API
    documented = api.get("/openapi.json").json()["components"]["schemas"]["Answer"]["properties"]
    assert {"signature", "highlight", "summary", "html", "example", "source_url", "docs_url"} <= documented.keys()
    assert all(documented[name].get("description") for name in ("highlight", "summary", "html", "source_url", "docs_url"))
    # top_k defaults to 5; the answers are counted by the version that gave them
    assert len(api.post("/v1/ask", json={"question": QUESTION}).json()["answers"]) == 5
    assert _metric(api, "qa_answers_total", model_version="1") == 2
    assert _metric(api, "qa_answer_duration_seconds_count", model_version="1") == 2  # the canary's latency check
    assert _metric(api, "qa_http_requests_total", route="/v1/ask", method="POST", status="200") == 2


def test_ask_abstains_when_nothing_is_close_and_counts_it(api: TestClient, qa_repository: Path):
    body = api.post("/v1/ask", json={"question": OFF_TOPIC_QUESTION}).json()
    local = Retriever.load(qa_repository / QA_MODEL / "1").reply([OFF_TOPIC_QUESTION])[0]
    assert local["abstained"] and body["abstained"] is True and body["answers"] == []
    assert body["reason"] == local["reason"] and "is it about the library?" in body["reason"]
    assert api.post("/v1/ask", json={"question": QUESTION}).json()["abstained"] is False
    assert _metric(api, "qa_abstentions_total", model_version="1") == 1
    assert _metric(api, "qa_answers_total", model_version="1") == 2
    schema = api.get("/openapi.json").json()["components"]["schemas"]["AskResponse"]["properties"]
    assert {"abstained", "reason"} <= set(schema)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"question": ""}, 422, "question"),
        ({"question": "   \n\t "}, 422, "question"),
        ({"question": "x" * 2001}, 422, "question"),
        ({"question": QUESTION, "top_k": 0}, 422, "top_k"),
        ({"question": QUESTION, "top_k": 51}, 422, "top_k"),
        ({"question": QUESTION, "top_k": "5"}, 422, "top_k"),
        ({"question": QUESTION, "top_k": 2.5}, 422, "top_k"),
        ({"question": 42}, 422, "question"),
        ({"question": None}, 422, "question"),
        ({}, 422, "question"),
        ({"question": QUESTION, "topk": 3}, 422, "topk"),
        ([QUESTION], 422, "body"),
    ],
)
def test_bad_questions_get_a_4xx_naming_the_field(api: TestClient, body, status: int, field: str):
    response = api.post("/v1/ask", json=body)
    assert response.status_code == status
    assert response.json()["field"] == field
    assert field in response.json()["error"]


def test_invalid_json_and_oversized_bodies_are_refused_with_json_errors(api: TestClient):
    response = api.post("/v1/ask", content=b'{"question": "unterminated', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["field"] == "body" and "not valid JSON" in response.json()["error"]

    huge = json.dumps({"question": QUESTION, "comment": "x" * 200_000})
    response = api.post("/v1/ask", content=huge, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"error": "the request body is larger than 65536 bytes", "field": "body"}

    # Without Content-Length (chunked upload) the limit is enforced while reading.
    response = api.post("/v1/feedback", content=iter([huge.encode()[i : i + 8192] for i in range(0, len(huge), 8192)]),
                        headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert _metric(api, "qa_http_requests_total", route="unmatched", method="POST", status="413") == 1

    assert api.get("/v1/nowhere").status_code == 404
    assert api.get("/v1/ask").status_code == 405


def test_feedback_is_stored_exported_and_counted(api: TestClient):
    first = api.post("/v1/feedback", json={"question": QUESTION, "symbol": "minilib.training.set_seed", "rating": "up", "model_version": "1"})
    second = api.post("/v1/feedback", json={"question": "print less", "symbol": "minilib.logging.set_verbosity", "rating": "down",
                                             "comment": "wrong answer", "model_version": "1"})
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json()["id"] > first.json()["id"]

    export = api.get("/v1/feedback/export")
    assert export.status_code == 200 and export.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in export.text.splitlines()]
    assert [(r["id"], r["rating"], r["comment"]) for r in rows] == [(first.json()["id"], "up", None), (second.json()["id"], "down", "wrong answer")]
    assert rows[1]["symbol"] == "minilib.logging.set_verbosity" and rows[1]["created_at"]
    assert _metric(api, "qa_feedback_total", rating="down", model_version="1") == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rating": "meh"}, "rating"),
        ({"rating": None}, "rating"),
        ({"symbol": ""}, "symbol"),
        ({"question": " "}, "question"),
        ({"model_version": ""}, "model_version"),
        ({"comment": "x" * 2001}, "comment"),
    ],
)
def test_bad_feedback_is_refused_and_not_stored(api: TestClient, change: dict, field: str):
    body = {"question": QUESTION, "symbol": "minilib.training.set_seed", "rating": "up", "model_version": "1", **change}
    response = api.post("/v1/feedback", json=body)
    assert response.status_code == 422 and response.json()["field"] == field
    assert api.get("/v1/feedback/export").text == ""


def test_health_readiness_and_the_page(api: TestClient):
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"ready": True, "model": QA_MODEL}
    page = api.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"] and "unsafe-inline" not in page.headers["content-security-policy"]
    assert 'id="question"' in page.text and '<script src="/static/page.js"' in page.text and "<script>" not in page.text
    script = api.get("/static/page.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "/v1/ask" in script.text and "/v1/feedback" in script.text
    assert api.get("/static/page.css").status_code == 200 and api.get("/static/missing.js").status_code == 404


def test_triton_down_gives_503_with_retry_after_then_recovers_by_itself(qa_repository: Path, tmp_path: Path):
    http_port, grpc_port, metrics_port = free_ports(3)
    with _client(tmp_path, f"127.0.0.1:{http_port}") as api:
        response = api.post("/v1/ask", json={"question": QUESTION})
        assert response.status_code == 503
        assert response.headers["retry-after"] == str(RETRY_AFTER_S)
        assert "unreachable" in response.json()["error"]
        ready = api.get("/readyz")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        assert api.get("/healthz").status_code == 200  # alive, just not ready

        with TritonServer(qa_repository, tmp_path / "triton", http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port) as triton:
            # Up, but the model is not loaded yet (explicit mode): still 503, now naming the model.
            response = api.post("/v1/ask", json={"question": QUESTION})
            assert response.status_code == 503 and QA_MODEL in response.json()["error"]
            triton.load_model(QA_MODEL)
            back = time.monotonic()
            while api.post("/v1/ask", json={"question": QUESTION}).status_code != 200:
                assert time.monotonic() - back < 10, "the API did not recover within 10 s of Triton coming back"
                time.sleep(0.2)
            assert api.get("/readyz").status_code == 200
        assert _metric(api, "qa_triton_errors_total", reason="unavailable") >= 2


def test_a_bad_database_url_fails_at_start_with_one_line(qa_triton: TritonServer):
    with pytest.raises(MlopsError, match="DATABASE_URL 'nosuchdb://x' is not a database URL"):
        create_app(ApiConfig(triton_url=qa_triton.http_url, model_name=QA_MODEL, database_url="nosuchdb://x"))


def test_the_api_process_does_not_load_torch_or_mlflow():
    """The API only moves JSON to Triton: importing the model stack would cost seconds and memory per replica."""
    import subprocess
    import sys

    code = "import sys, mlops.serving.serve; print(sorted(m for m in ('torch', 'mlflow', 'transformers') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"
