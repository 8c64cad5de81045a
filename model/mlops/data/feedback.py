"""Stored user feedback as training data. A thumbs-up (question, symbol) the API stored becomes a training pair with
its provenance (``feedback:<id>``); a thumbs-down says only that an answer was wrong, so it waits in the review queue
until an annotator (``mlops review``) picks the symbol that answers it (a pair, ``review:<id>``) or marks the question
off-topic (an off-topic example).

Feedback never reaches an evaluation set: a pair joins the train split only, a rating of a symbol held out for
validation or test is left out (training on it would leak that symbol), and so is a question near-identical to an
evaluation question.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from mlops.core.errors import MlopsError
from mlops.data.labelled import NearIdentical
from mlops.data.questions import Pair

RULE = "feedback"
REVIEW_RULE = "review"
FEEDBACK_RULES = (RULE, REVIEW_RULE)
SYMBOL, OFF_TOPIC = "symbol", "off-topic"  # what an annotator decides about a thumbs-down
# The comment `mlops simulate` puts on its ratings: a rule's verdict, not a user's, so never training data.
SIMULATED = "mlops simulate"


class ReviewDecision(BaseModel):
    """An annotator's decision on a thumbs-down (mlops.serving.feedback.Review.as_dict)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    decision: Literal["symbol", "off-topic"]
    symbol: str | None = None
    reviewer: str
    decided_at: str

    @model_validator(mode="after")
    def _symbol_with_its_decision(self) -> ReviewDecision:
        if (self.decision == SYMBOL) != bool(self.symbol):
            raise ValueError("a review names a symbol exactly when its decision is 'symbol'")
        return self


class FeedbackRow(BaseModel):
    """One row of the feedback store's export (mlops.serving.feedback.Feedback.as_dict)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int
    question: str
    symbol: str
    rating: Literal["up", "down"]
    model_version: str
    comment: str | None = None
    review: ReviewDecision | None = None


class OffTopicExample(BaseModel):
    """A question an annotator marked as not about the library (``off_topic.jsonl`` of a dataset)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    question: str
    source: str  # review:<feedback id>


class FromFeedback(BaseModel):
    pairs: list[Pair]
    off_topic: list[OffTopicExample]
    left_out: dict[str, int]  # why -> how many ratings


class QueueItem(BaseModel):
    """One question users rated down and nobody has reviewed: the ratings' ids and the symbols they rejected."""

    question: str
    feedback_ids: list[int]
    rejected: list[str]  # symbols rated down, most often first
    model_versions: list[str]


def read_export(path: Path) -> list[FeedbackRow]:
    """The JSON lines of ``GET /v1/feedback/export`` (or the store's ``export``)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        return [FeedbackRow.model_validate(json.loads(line)) for line in lines if line.strip()]
    except (OSError, json.JSONDecodeError, ValidationError) as exc:
        raise MlopsError(f"feedback export {path} is unreadable: {str(exc).splitlines()[0]}") from None


def _key(question: str) -> str:
    return " ".join(question.lower().split())


def review_queue(rows: Iterable[FeedbackRow]) -> list[QueueItem]:
    """The unreviewed thumbs-down of users (not of the simulator), one item per question, the most rated down first."""
    grouped: dict[str, list[FeedbackRow]] = defaultdict(list)
    for row in rows:
        if row.rating == "down" and row.comment != SIMULATED and row.review is None:
            grouped[_key(row.question)].append(row)
    items = [QueueItem(question=group[0].question.strip(), feedback_ids=[r.id for r in group],
                       rejected=[s for s, _ in Counter(r.symbol for r in group).most_common()],
                       model_versions=sorted({r.model_version for r in group})) for group in grouped.values()]
    return sorted(items, key=lambda item: (-len(item.feedback_ids), item.feedback_ids[0]))


def from_feedback(rows: Iterable[FeedbackRow], split_by_symbol: dict[str, str], held_out: Iterable[str]) -> FromFeedback:
    """Training pairs from the thumbs-up rows and the reviewed thumbs-down, off-topic examples from the reviews, and
    counts of what was left out and why."""
    held_out = NearIdentical(held_out)
    pairs: dict[tuple[str, str], Pair] = {}
    off_topic: dict[str, OffTopicExample] = {}
    left_out: Counter[str] = Counter()
    for row in rows:
        question, review = row.question.strip(), row.review
        if row.comment == SIMULATED:
            left_out["simulated (mlops simulate)"] += 1
            continue
        if row.rating == "down" and review is None:
            left_out["thumbs-down (waits for review)"] += 1
            continue
        if question in held_out:
            left_out["an evaluation question"] += 1
            continue
        if row.rating == "down" and review.decision == OFF_TOPIC:
            if _key(question) in off_topic:
                left_out["repeated"] += 1
            else:
                off_topic[_key(question)] = OffTopicExample(question=question, source=f"review:{row.id}")
            continue
        symbol, rule = (row.symbol, RULE) if row.rating == "up" else (review.symbol, REVIEW_RULE)
        if symbol not in split_by_symbol:
            left_out["symbol not in the corpus"] += 1
        elif split_by_symbol[symbol] != "train":
            left_out["symbol held out for validation or test"] += 1
        elif (_key(question), symbol) in pairs:
            left_out["repeated"] += 1
        else:
            pairs[(_key(question), symbol)] = Pair(question=question, symbol=symbol, rule=rule, source=f"{rule}:{row.id}")
    return FromFeedback(pairs=list(pairs.values()), off_topic=list(off_topic.values()), left_out=dict(sorted(left_out.items())))
