"""The quality gate: what a candidate must beat before it may be registered. Pure: it reads the scores
evaluate computed, so it is tested on made-up scores."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# The encoder check of the gate reads the test questions of the rules the run trained on: the rules it
# leaves out ("What does X do?", which only teaches names) are where the untuned encoder is strongest.
GATE_SET = "test_trained_rules"


class GateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: str = Field("mrr", pattern="^(mrr|recall_at_(1|5|10))$", description="test-split metric the gate compares")
    tolerance: float = Field(0.01, ge=0, le=1, description="how much worse than the champion a candidate may be")


def decide_gate(systems: dict, config: GateConfig) -> tuple[bool, str, list[dict]]:
    """Pass only if the tuned encoder beats the untuned one on the kinds of question it was trained on,
    and the candidate system is not worse than the champion on the whole test split."""
    metric = config.metric
    value = lambda name, which="test": systems[name][which]["overall"][metric]  # noqa: E731
    checks = [{
        "check": f"candidate_dense {GATE_SET} {metric} > untuned {GATE_SET} {metric}",
        "passed": value("candidate_dense", GATE_SET) > value("untuned", GATE_SET),
        "values": [value("candidate_dense", GATE_SET), value("untuned", GATE_SET)],
    }]
    if "champion" in systems:
        checks.append({
            "check": f"candidate test {metric} >= champion test {metric} - {config.tolerance}",
            "passed": value("candidate") >= value("champion") - config.tolerance,
            "values": [value("candidate"), value("champion")],
        })
    failed = [c for c in checks if not c["passed"]]
    if not failed:
        return True, "all checks passed", checks
    c = failed[0]
    return False, f"{c['check']} is false ({c['values'][0]:.4f} vs {c['values'][1]:.4f})", checks
