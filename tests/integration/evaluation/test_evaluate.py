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
    served = report["served_variant"]
    assert logged == shipped_settings(report["bm25_weight"]).model_copy(update={"encoder_variant": served,
                                                                               "abstain_below": report["abstention"]["threshold"]})
    # The abstention threshold refuses at most 1% of each in-domain development set; both off-topic sets are measured.
    abstention = report["abstention"]
    assert all(abstention["in_domain_refused"][which] <= 0.01 for which in abstention["chosen_on"])
    assert {which: f["count"] for which, f in abstention["off_topic_answered"].items()} == {"off_topic_dev": 120, "off_topic_test": 120}
    assert logged.digest() == tags[tracking.TAG_RETRIEVAL] and tags[tracking.TAG_ENCODER_VARIANT] == served
    # Every variant was measured against torch-fp32 on both sets; the ONNX graphs are logged with their digests.
    variants = report["variants"]
    assert list(variants) == ["torch-fp32", "onnx-fp32", "onnx-int8"] and variants[served]["deployable"]
    assert all(set(v["sets"]) == {"validation", "natural_dev"} and v["deployable"] == (v["fault"] is None) for v in variants.values())
    assert variants["torch-fp32"]["sets"]["validation"]["delta_mrr"] == 0.0
    logged_graphs = {a.path: a.file_size for a in client.list_artifacts(run_id, tracking.ONNX_ARTIFACT)}
    for variant in ("onnx-fp32", "onnx-int8"):
        assert logged_graphs[f"{tracking.ONNX_ARTIFACT}/{variants[variant]['file']}"] == variants[variant]["bytes"]
    with pytest.raises(MlopsError, match="cannot be registered: gate failed"):
        register_run(settings, run_id, echo=lambda *_: None)
    assert client.search_model_versions(f"name = '{settings.model_name}'") == []
