"""Exporting a registered version: it answers with the retrieval settings it was measured with."""

from __future__ import annotations

from pathlib import Path

from mlops.core.settings import Settings
from mlops.lifecycle import tracking
from mlops.lifecycle.export import export_version
from mlops.pipeline import register_run
from mlops.search import lexical
from mlops.search.lexical import QueryExpansion
from mlops.search.retriever import Retriever
from mlops.search.settings import RetrievalSettings, shipped_settings
from mlops.training.config import TrainConfig
from mlops.training.train import train
from support.lifecycle import FAST, pass_gate


def test_an_export_answers_with_the_settings_its_version_was_measured_with(settings: Settings, monkeypatch, tmp_path: Path):
    client = tracking.configure(settings)
    run_id = train(settings, TrainConfig(**FAST), echo=lambda *_: None)
    measured = RetrievalSettings(bm25_weight=0.4, public_api_prior=0.1, query_expansion=QueryExpansion(weight=0.5, entries={"crashed": "resume"}))
    pass_gate(settings, run_id, measured)
    version = client.get_model_version(settings.model_name, register_run(settings, run_id, echo=lambda *_: None))
    assert version.tags[tracking.TAG_RETRIEVAL] == measured.digest()
    # Later the checkout's thesaurus changes, and the run is evaluated again with it: the version keeps its own.
    edited = tmp_path / "edited.yaml"
    edited.write_text("weight: 1.0\nentries: {settings: config}\n")
    monkeypatch.setattr(lexical, "QUERY_EXPANSION_FILE", edited)
    pass_gate(settings, run_id, shipped_settings(0.4))
    assert Retriever.load(export_version(settings, client, version, tmp_path / "exact", echo=lambda *_: None)).settings == measured
