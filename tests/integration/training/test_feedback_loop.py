"""The feedback loop end to end: users ask the real API (Triton serving the untuned model) and rate its answers down;
an annotator answers them with `mlops review` (a symbol each, and one question off-topic); `mlops data --feedback` and
a short training follow; the reviewed questions' chosen symbols rank higher than under the same training without the
reviews, and evaluate reports those questions and the off-topic one apart from the evaluation sets."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import urllib.request
from pathlib import Path

import numpy as np

from mlops.core.errors import GateFailed
from mlops.core.settings import Settings
from mlops.data import dataset
from mlops.evaluation.evaluate import evaluate
from mlops.evaluation.gate import GateConfig
from mlops.lifecycle import tracking
from mlops.pipeline import build_data
from mlops.search.encoder import Encoder, base_model_path
from mlops.search.retriever import Retriever, corpus_embeddings
from mlops.training.config import TrainConfig
from mlops.training.train import train
from mlops.triton.server import TritonServer
from support.services import MLOPS, ApiProcess

# Questions in users' words about train-split symbols of the mini package; the untuned model misses each at rank 1.
ASKED = {
    "pick up where the job died": "minilib.training.Trainer.resume",
    "how good is the text model at predicting": "minilib.metrics.perplexity",
    "the model keeps saying the same thing over and over": "minilib.generation.utils.RepetitionPenalty",
    "run on the graphics card": "minilib.modeling.Model.to_device",
    "forget what was remembered between calls": "minilib.cache.KeyValueCache.reset",
}
OFF_TOPIC = "how do I train my dog to sit"  # answered by the untuned model (best cosine 0.26, abstains below 0.2)
TRAINING = TrainConfig(epochs=3, batch_size=8, learning_rate=2e-4, seed=5)


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def ranks(encoder: Encoder, folder: Path) -> list[int]:
    """Each asked question's rank of its symbol, as the service ranks (fused with BM25 at the served weight)."""
    symbols = dataset.load_corpus(folder)
    retriever = Retriever(encoder, symbols, corpus_embeddings(encoder, symbols, None), bm25_weight=0.3)
    order = retriever.rank(list(ASKED), len(symbols))
    return [1 + [retriever.symbols[i].symbol for i, _ in row].index(symbol) for row, symbol in zip(order, ASKED.values(), strict=True)]


def test_reviewed_thumbs_down_teach_the_next_model(settings: Settings, mini_package: Path, qa_triton: TritonServer, tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    api = ApiProcess(qa_triton.http_url, tmp_path / "api", database_url=url)
    try:
        for question in [*ASKED, OFF_TOPIC]:  # a user asks, reads the first answer, and rejects it
            reply = post(f"{api.url}/v1/ask", {"question": question, "top_k": 5})
            first = reply["answers"][0]["symbol"]
            assert first != ASKED.get(question), f"the untuned model already answers {question!r}: pick a harder question"
            post(f"{api.url}/v1/feedback", {"question": question, "symbol": first, "rating": "down", "model_version": reply["model_version"]})
    finally:
        api.kill()

    without = dataset.resolve(settings.datasets_dir, None).name  # the settings fixture's dataset: no feedback
    typed = "".join(f"{symbol}\n" for symbol in ASKED.values()) + "o\n"  # the queue keeps the order they were asked in
    reviewed = subprocess.run([MLOPS, "review", "--feedback", url, "--reviewer", "ana"], input=typed, capture_output=True, text=True,
                              env={**os.environ, "MLOPS_HOME": str(settings.home)}, timeout=120)
    assert reviewed.returncode == 0, reviewed.stderr
    assert json.loads(reviewed.stdout) == {"reviewer": "ana", "symbol": len(ASKED), "off_topic": 1, "skipped": 0, "left": 0}
    with_reviews = build_data(settings, mini_package, echo=lambda *_: None, feedback=url)
    taught = [(p.question, p.symbol) for p in dataset.load_split(settings.datasets_dir / with_reviews, "train") if p.rule == "review"]
    assert sorted(taught) == sorted(ASKED.items())
    assert [q.question for q in dataset.load_off_topic(settings.datasets_dir / with_reviews)] == [OFF_TOPIC]

    client = tracking.configure(settings)
    ranked = {"served": ranks(Encoder(base_model_path()), settings.datasets_dir / with_reviews)}
    for name, dataset_hash in (("without reviews", without), ("with reviews", with_reviews)):
        run_id = train(settings, TRAINING, dataset_hash, echo=lambda *_: None)
        model = tracking.download(client, run_id, tracking.MODEL_ARTIFACT, settings.cache_dir)
        ranked[name] = ranks(Encoder(model), settings.datasets_dir / with_reviews)
    # evaluate scores the taught questions apart (trained on: never gated) and says whether the off-topic one is answered
    with contextlib.suppress(GateFailed):  # the untuned encoder is already perfect on the mini package's test split
        evaluate(settings, run_id, GateConfig(), echo=lambda *_: None)
    report = json.loads((settings.reports_dir / run_id / "report.json").read_text())
    assert report["systems"]["candidate"]["feedback_trained"]["overall"]["count"] == len(ASKED)
    assert set(report["systems"]["candidate"]["feedback_trained"]["slices"]) == {"review"}
    assert report["abstention"]["off_topic_answered"]["off_topic_reviewed"]["count"] == 1
    assert "feedback_trained" not in report["gate"]["reason"] and all("feedback" not in c["check"] for c in report["gate"]["checks"])
    mrr = {name: float(np.mean([1 / r for r in found])) for name, found in ranked.items()}
    assert mrr["with reviews"] > mrr["without reviews"] and mrr["with reviews"] > mrr["served"], ranked
    # each one: the same training without the reviews leaves every question below rank 1 (last run: 3, 3, 4, 5, 13; with: 1s)
    assert all(a < b for a, b in zip(ranked["with reviews"], ranked["without reviews"], strict=True)), ranked
