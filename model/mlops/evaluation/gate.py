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


# An encoder variant (ONNX, INT8) may lose at most this much recall@5 or MRR against the torch encoder it was made
# from, on the validation split and on the development questions, fused as it serves.
VARIANT_MAX_LOSS = 0.01
VARIANT_METRICS = ("recall@5", "mrr")


def variant_faults(measured: dict[str, dict]) -> dict[str, str | None]:
    """Per variant, the first loss over ``VARIANT_MAX_LOSS`` as one line, or None: it may be deployed.

    ``measured`` maps a variant to ``{"sets": {set: {"delta_recall@5": ..., "delta_mrr": ...}}}``."""
    faults: dict[str, str | None] = {}
    for variant, figures in measured.items():
        faults[variant] = next((f"{variant} loses {-deltas[f'delta_{m}']:.4f} {m} on {which} (at most {VARIANT_MAX_LOSS})"
                                for which, deltas in figures["sets"].items() for m in VARIANT_METRICS
                                if deltas[f"delta_{m}"] < -VARIANT_MAX_LOSS), None)
    return faults


def choose_variant(measured: dict[str, dict], faults: dict[str, str | None]) -> str:
    """The fastest variant in process (``questions_per_second``) among those accurate enough."""
    allowed = [v for v in measured if faults[v] is None]
    return max(allowed, key=lambda v: measured[v]["questions_per_second"])
