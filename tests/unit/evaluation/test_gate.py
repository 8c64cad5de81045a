"""The quality gate on made-up scores, and the test questions it reads."""

from __future__ import annotations

from mlops.data import dataset
from mlops.data.corpus import extract_symbols
from mlops.evaluation.evaluate import _test_set
from mlops.evaluation.gate import GATE_SET, GateConfig, decide_gate


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
        return _test_set(folder, "train", by_name, rule_set).questions

    assert questions({"how"}) == [p.question for p in pairs if p.rule == "how"]
    every = [p.question for p in pairs]
    assert questions(set()) == every  # nothing logged: the whole split
    assert questions({"no-such-rule"}) == every  # logged rules that made no question here: the whole split too
