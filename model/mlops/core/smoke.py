"""The smoke test every served model must pass: five well-formed answers to one fixed question, whether the
answers come from Triton (`mlops deploy`) or from a deployed API (`mlops smoke`)."""

from __future__ import annotations

import math

from mlops.core.errors import MlopsError

SMOKE_QUESTION = "How do I save a fine-tuned model to a folder and load it again later?"
SMOKE_TOP_K = 5
ANSWER_FIELDS = frozenset({"symbol", "path", "line", "score", "text"})


def check_smoke_answers(answers: list, where: str) -> None:
    """Five well-formed answers to SMOKE_QUESTION, or a one-line error saying what ``where`` answered."""
    if len(answers) != SMOKE_TOP_K or any(not ANSWER_FIELDS <= a.keys() or not math.isfinite(a["score"]) for a in answers):
        raise MlopsError(f"smoke test failed: {where} answered {answers!r:.200} to {SMOKE_QUESTION!r}")
