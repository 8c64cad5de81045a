"""The lifecycle's shared steps: a fast training config, a passing gate recorded as `mlops evaluate` records it, and a
digest of a folder (the Triton repository a failed deploy must leave alone)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mlops.core.settings import Settings
from mlops.lifecycle import registry, tracking
from mlops.search.retriever import Retriever
from mlops.search.settings import RetrievalSettings, shipped_settings
from mlops.training.config import TrainConfig
from mlops.training.train import train

FAST = dict(max_steps=3, batch_size=8, rules=("how", "summary", "argument", "what"))


def folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


def pass_gate(settings: Settings, run_id: str, retrieval: RetrievalSettings | None = None) -> None:
    """Record the settings measured and a passing verdict, as `mlops evaluate` does, so the deploy path can be
    tested on its own."""
    client = tracking.configure(settings)
    retrieval = retrieval or shipped_settings(0.3)
    tracking.log_retrieval_settings(client, run_id, retrieval.digest(), retrieval.model_dump())
    verdict = {tracking.TAG_GATE: "passed", tracking.TAG_GATE_REASON: "test", tracking.TAG_BM25_WEIGHT: str(retrieval.bm25_weight)}
    for key, value in verdict.items():
        client.set_tag(run_id, key, value)


def trained_and_passed(settings: Settings, seed: int | None = None) -> str:
    run_id = train(settings, TrainConfig(**FAST if seed is None else {**FAST, "seed": seed}), echo=lambda *_: None)
    pass_gate(settings, run_id)
    return run_id


def shifted(retriever: Retriever) -> Retriever:
    retriever.prior = retriever.prior + 0.05 * (retriever.prior == 0)  # different scores than Triton's copy
    return retriever


def assert_unchanged(settings: Settings, client, champion: str, digest: str) -> None:
    assert str(registry.by_alias(client, settings.model_name, registry.CHAMPION).version) == champion
    assert folder_digest(settings.triton_repository) == digest
