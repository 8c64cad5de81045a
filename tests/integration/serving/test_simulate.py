"""`mlops simulate` against the real API (and Triton): what it prints and counts is what the API answered and stored."""

from __future__ import annotations

import json
from pathlib import Path

import requests

from mlops.bench.simulate import plan, simulate
from mlops.data.feedback import SIMULATED, FeedbackRow, from_feedback, review_queue
from mlops.triton.server import TritonServer
from support.services import ApiProcess


def test_simulated_users_ask_rate_and_their_ratings_are_stored(qa_triton: TritonServer, tmp_path: Path):
    api = ApiProcess(qa_triton.http_url, tmp_path / "api")
    try:
        lines: list[str] = []
        summary = simulate(api.url, count=12, seed=5, rate=50, echo=lines.append)
        exported = [json.loads(line) for line in requests.get(f"{api.url}/v1/feedback/export", timeout=10).text.splitlines()]
        metrics = requests.get(f"{api.url}/metrics", timeout=10).text
    finally:
        api.kill()
    sent = plan(12, seed=5)
    assert len(lines) == 13 and lines[0].startswith(f"simulating 12 users against {api.url} (seed 5")
    for line, request in zip(lines[1:], sent, strict=True):  # each question, in the seed's order, and its answer
        assert request.persona in line and repr(request.question.question[:60]) in line and "(version 1, " in line
    assert {name: figures["sent"] for name, figures in summary.items()} == {p: sum(r.persona == p for r in sent) for p in summary}
    assert sum(f["answered"] + f["abstained"] for f in summary.values()) == 12 and not any(f["errors"] for f in summary.values())
    rated = sum(f["up"] + f["down"] for f in summary.values())
    assert rated == len(exported) == sum(f["answered"] for f in summary.values())
    assert {row["comment"] for row in exported} == {SIMULATED} and {row["model_version"] for row in exported} == {"1"}
    # a rule's ratings never become training pairs, even on a symbol of the train split
    rows = [FeedbackRow.model_validate(row) for row in exported]
    made = from_feedback(rows, {row.symbol: "train" for row in rows}, held_out=[])
    assert made.pairs == [] and made.left_out == {"simulated (mlops simulate)": len(rows)}
    assert review_queue(rows) == []  # nor do they wait for an annotator
    assert sum(1 for row in exported if row["rating"] == "down") == sum(f["down"] for f in summary.values())
    assert 'qa_answers_total{model_version="1"} 12.0' in metrics
