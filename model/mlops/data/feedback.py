"""Stored user feedback as training data: a thumbs-up (question, symbol) the API stored becomes a training pair with
its provenance (``feedback:<id>``); a thumbs-down says only that an answer was wrong, so it waits for review.

Feedback never reaches an evaluation set: a pair joins the train split only, a rating of a symbol held out for
validation or test is left out (training on it would leak that symbol), and so is a question near-identical to an
evaluation question.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from mlops.core.errors import MlopsError
from mlops.data.labelled import NearIdentical
from mlops.data.questions import Pair

RULE = "feedback"
# The comment `mlops simulate` puts on its ratings: a rule's verdict, not a user's, so never training data.
SIMULATED = "mlops simulate"


class FeedbackRow(BaseModel):
    """One row of the feedback store's export (mlops.serving.feedback.Feedback.as_dict)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int
    question: str
    symbol: str
    rating: Literal["up", "down"]
    model_version: str
    comment: str | None = None


def read_export(path: Path) -> list[FeedbackRow]:
    """The JSON lines of ``GET /v1/feedback/export`` (or the store's ``export``)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        return [FeedbackRow.model_validate(json.loads(line)) for line in lines if line.strip()]
    except (OSError, json.JSONDecodeError, ValidationError) as exc:
        raise MlopsError(f"feedback export {path} is unreadable: {str(exc).splitlines()[0]}") from None


def feedback_pairs(rows: Iterable[FeedbackRow], split_by_symbol: dict[str, str], held_out: Iterable[str]) -> tuple[list[Pair], dict]:
    """Training pairs from the thumbs-up rows, and counts of what was left out and why."""
    held_out = NearIdentical(held_out)
    pairs: dict[tuple[str, str], Pair] = {}
    left_out: Counter[str] = Counter()
    for row in rows:
        key = (row.question.strip().lower(), row.symbol)
        if row.comment == SIMULATED:
            left_out["simulated (mlops simulate)"] += 1
        elif row.rating == "down":
            left_out["thumbs-down (waits for review)"] += 1
        elif row.symbol not in split_by_symbol:
            left_out["symbol not in the corpus"] += 1
        elif split_by_symbol[row.symbol] != "train":
            left_out["symbol held out for validation or test"] += 1
        elif row.question in held_out:
            left_out["an evaluation question"] += 1
        elif key in pairs:
            left_out["repeated"] += 1
        else:
            pairs[key] = Pair(question=row.question.strip(), symbol=row.symbol, rule=RULE, source=f"feedback:{row.id}")
    return list(pairs.values()), dict(sorted(left_out.items()))
