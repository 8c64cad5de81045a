"""The quality gate on made-up scores, and the test questions it reads."""

from __future__ import annotations

from mlops.data import dataset
from mlops.data.corpus import extract_symbols
from mlops.evaluation.evaluate import split_questions
from mlops.evaluation.gate import GATE_SET, VARIANT_MAX_LOSS, GateConfig, choose_variant, decide_gate, variant_faults


def _systems(**mrr: tuple[float, float]) -> dict:
    """System name -> (test MRR, MRR on the test questions of the trained rules)."""
    return {name: {"test": {"overall": {"mrr": whole}}, GATE_SET: {"overall": {"mrr": trained}}} for name, (whole, trained) in mrr.items()}


def test_gate_compares_encoders_on_the_trained_rules_and_systems_on_the_whole_split():
    # Worse than the untuned encoder over the whole split (its untrained "What does X do?" questions), better on what it trained on.
    passed, reason, _ = decide_gate(_systems(candidate_dense=(0.83, 0.93), untuned=(0.85, 0.87), candidate=(0.92, 0.95)), GateConfig())
    assert passed, reason
    passed, reason, _ = decide_gate(_systems(candidate_dense=(0.90, 0.86), untuned=(0.85, 0.87), candidate=(0.92, 0.95)), GateConfig())
    assert not passed and reason == "candidate_dense test_trained_rules mrr > untuned test_trained_rules mrr is false (0.8600 vs 0.8700)"
    # Against the champion the deployed system counts, on every test question, within the tolerance.
    systems = _systems(candidate_dense=(0.83, 0.93), untuned=(0.85, 0.87), candidate=(0.92, 0.99), champion=(0.94, 0.90))
    passed, reason, _ = decide_gate(systems, GateConfig(tolerance=0.01))
    assert not passed and reason.startswith("candidate test mrr >= champion test mrr - 0.01 is false")
    assert decide_gate(systems, GateConfig(tolerance=0.03))[0]


def test_gate_question_set_follows_the_logged_rules_and_falls_back_to_the_whole_split(mini_package, tmp_path):
    symbols = extract_symbols(mini_package, include=(), exclude=())[0]
    folder = tmp_path / dataset.build_dataset(symbols, tmp_path, source="mini")[0]
    by_name = {s.symbol: s for s in symbols}
    pairs = dataset.load_split(folder, "train")
    rules = {p.rule for p in pairs}
    assert {"what", "how"} <= rules  # the fixture makes both kinds, so the filter below has something to drop

    def questions(rule_set):
        return split_questions(folder, "train", by_name, rule_set).questions

    assert questions({"how"}) == [p.question for p in pairs if p.rule == "how"]
    every = [p.question for p in pairs]
    assert questions(set()) == every  # nothing logged: the whole split
    assert questions({"no-such-rule"}) == every  # logged rules that made no question here: the whole split too


def _variants(**losses: tuple[float, float, float]) -> dict:
    """Variant -> (recall@5 delta on validation, MRR delta on the development questions, questions per second)."""
    return {name: {"sets": {"validation": {"delta_recall@5": r5, "delta_mrr": 0.0}, "natural_dev": {"delta_recall@5": 0.0, "delta_mrr": mrr}},
                   "questions_per_second": qps} for name, (r5, mrr, qps) in losses.items()}


def test_a_variant_that_loses_more_than_the_rule_allows_is_not_served_however_fast():
    measured = _variants(**{"torch-fp32": (0.0, 0.0, 250.0), "onnx-fp32": (0.0, -0.002, 300.0), "onnx-int8": (-0.004, -0.0125, 600.0)})
    faults = variant_faults(measured)
    assert faults == {"torch-fp32": None, "onnx-fp32": None,
                      "onnx-int8": f"onnx-int8 loses 0.0125 mrr on natural_dev (at most {VARIANT_MAX_LOSS})"}
    assert choose_variant(measured, faults) == "onnx-fp32"
    measured["onnx-int8"]["sets"]["natural_dev"]["delta_mrr"] = -VARIANT_MAX_LOSS  # exactly at the limit is allowed
    assert choose_variant(measured, variant_faults(measured)) == "onnx-int8"
    slow = _variants(**{"torch-fp32": (0.0, 0.0, 250.0), "onnx-fp32": (0.0, 0.0, 240.0), "onnx-int8": (-0.02, 0.0, 600.0)})
    assert choose_variant(slow, variant_faults(slow)) == "torch-fp32"
