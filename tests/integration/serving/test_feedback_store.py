"""Feedback survives: the same store on SQLite (WAL) and on a real PostgreSQL, and the API killed mid-write."""

from __future__ import annotations

import json
import signal
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from mlops.serving.feedback import FeedbackStore
from mlops.triton.server import TritonServer
from support.services import ApiProcess, postgres_server


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.db'}"
    return request.getfixturevalue("postgres_url")


def test_rows_are_stored_and_exported_in_order(database_url: str):
    store = FeedbackStore(database_url)
    before = len(list(store.export()))  # the PostgreSQL cluster is shared by this module
    ids = [store.add(question=f"question {i}", symbol="minilib.training.set_seed", rating="up" if i % 2 else "down",
                     model_version="3", comment="ünïcode ✓" if i == 0 else None) for i in range(5)]
    rows = list(store.export())[before:]
    assert [r["id"] for r in rows] == ids == sorted(ids)
    assert rows[0]["comment"] == "ünïcode ✓" and rows[1]["comment"] is None
    assert [r["rating"] for r in rows] == ["down", "up", "down", "up", "down"]
    store.close()
    # A second store on the same database (a restarted API) sees the same rows.
    assert [r["id"] for r in FeedbackStore(database_url).export()][before:] == ids


def test_reviews_are_stored_with_who_and_when_and_the_export_carries_the_newest(database_url: str):
    store = FeedbackStore(database_url)
    ids = [store.add(question="where is the seed", symbol="minilib.training.Trainer", rating="down", model_version="3") for _ in range(2)]
    store.add_review(ids, reviewer="ana", decision="off-topic")
    store.add_review(ids[:1], reviewer="bo", decision="symbol", symbol="minilib.training.set_seed")  # a second look
    reviews = {r["id"]: r["review"] for r in store.export() if r["id"] in ids}
    assert reviews[ids[0]]["decision"] == "symbol" and reviews[ids[0]]["symbol"] == "minilib.training.set_seed"
    assert reviews[ids[0]]["reviewer"] == "bo" and reviews[ids[1]] == {**reviews[ids[1]], "decision": "off-topic", "reviewer": "ana", "symbol": None}
    assert datetime.fromisoformat(reviews[ids[1]]["decided_at"]).tzinfo is not None
    for bad in ({"decision": "symbol"}, {"decision": "off-topic", "symbol": "minilib.training.set_seed"}, {"decision": "maybe"}):
        with pytest.raises(ValueError, match="a review is symbol or off-topic"):
            store.add_review(ids, reviewer="ana", **bad)
    store.close()


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, {}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_feedback_acknowledged_with_201_survives_sigkill(backend: str, qa_triton: TritonServer, tmp_path: Path,
                                                          request: pytest.FixtureRequest):
    database_url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    api = ApiProcess(qa_triton.http_url, tmp_path / "home", database_url)
    acknowledged: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(n: int) -> None:
        for i in range(2000):  # bounded; the kill ends it much sooner
            if stop.is_set():
                return
            try:
                status, body = _post(api.url + "/v1/feedback", {"question": f"writer {n} question {i}", "symbol": "s",
                                                               "rating": "up", "model_version": "1"})
            except OSError:
                return  # the server is gone
            if status == 201:
                with lock:
                    acknowledged.append(body["id"])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        while len(acknowledged) < 40 and any(t.is_alive() for t in threads):
            threading.Event().wait(0.05)
        api.kill(signal.SIGKILL)  # mid-write: requests are in flight
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        api.kill()
    assert len(acknowledged) >= 40

    restarted = ApiProcess(qa_triton.http_url, tmp_path / "home", database_url)
    try:
        with urllib.request.urlopen(restarted.url + "/v1/feedback/export", timeout=30) as response:
            stored = {json.loads(line)["id"] for line in response.read().decode().splitlines()}
    finally:
        restarted.kill(signal.SIGTERM)
    assert set(acknowledged) <= stored
