"""`mlops evaluate`: the gate's verdict on a broken candidate, its report, and what it logs with the run."""

from __future__ import annotations

import json

import pytest

from mlops.core.errors import GateFailed, MlopsError
from mlops.core.settings import Settings
from mlops.data import dataset
from mlops.evaluation.evaluate import evaluate
from mlops.evaluation.gate import GateConfig
from mlops.lifecycle import tracking
from mlops.pipeline import register_run
from mlops.search.settings import RetrievalSettings, shipped_settings
from mlops.training.config import TrainConfig
from mlops.training.train import train


def test_gate_blocks_a_broken_candidate(settings: Settings):
    trained_rules = ("how", "summary", "argument")
    broken = TrainConfig(max_steps=12, batch_size=8, learning_rate=2e-3, shuffle_labels=True, rules=trained_rules)
    run_id = train(settings, broken, echo=lambda *_: None)
    with pytest.raises(GateFailed, match="candidate_dense test_trained_rules mrr > untuned test_trained_rules mrr is false"):
        evaluate(settings, run_id, GateConfig(), echo=lambda *_: None)
    report = json.loads((settings.reports_dir / run_id / "report.json").read_text())
    assert report["gate"]["passed"] is False
    # The encoder check read only the test questions of the rules the run trained on.
    test_pairs = dataset.load_split(dataset.resolve(settings.datasets_dir, None), "test")
    gate_count = report["systems"]["untuned"]["test_trained_rules"]["overall"]["count"]
    assert gate_count == sum(p.rule in trained_rules for p in test_pairs) < len(test_pairs)
    assert set(report["systems"]) == {"candidate", "candidate_dense", "untuned", "bm25"}
    assert (settings.reports_dir / run_id / "metrics.png").stat().st_size > 10_000
    client = tracking.configure(settings)
    tags = client.get_run(run_id).data.tags
    assert tags[tracking.TAG_GATE] == "failed"
    # What the candidate was measured with is logged with the run, under its digest.
    logged = RetrievalSettings.model_validate(tracking.load_retrieval_settings(run_id, tags[tracking.TAG_RETRIEVAL]))
    assert logged == shipped_settings(report["bm25_weight"]) and logged.digest() == tags[tracking.TAG_RETRIEVAL]
    with pytest.raises(MlopsError, match="cannot be registered: gate failed"):
        register_run(settings, run_id, echo=lambda *_: None)
    assert client.search_model_versions(f"name = '{settings.model_name}'") == []
