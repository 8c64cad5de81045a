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
    earlier: ReviewDecision | None = None  # the question's newest decision, when users rated it down again since


def read_export(path: Path) -> list[FeedbackRow]:
    """The JSON lines of ``GET /v1/feedback/export`` (or the store's ``export``)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        return [FeedbackRow.model_validate(json.loads(line)) for line in lines if line.strip()]
    except (OSError, json.JSONDecodeError, ValidationError) as exc:
        raise MlopsError(f"feedback export {path} is unreadable: {str(exc).splitlines()[0]}") from None


def parse_rows(rows: Iterable[dict]) -> list[FeedbackRow]:
    """The feedback store's rows (mlops.serving.feedback.FeedbackStore.export) as FeedbackRows; one error naming a
    malformed row (edited by hand: the store writes none)."""
    parsed = []
    for row in rows:
        try:
            parsed.append(FeedbackRow.model_validate(row))
        except ValidationError as exc:
            raise MlopsError(f"feedback row {row.get('id')} is malformed ({str(exc).splitlines()[-1].strip()}); "
                             "fix or delete it in the feedback database") from None
    return parsed


def _key(question: str) -> str:
    return " ".join(question.lower().split())


def _tidy(question: str) -> str:
    return " ".join(question.split())


def _newest_review(rows: Iterable[FeedbackRow]) -> FeedbackRow | None:
    reviewed = [r for r in rows if r.review is not None]
    return max(reviewed, key=lambda r: (r.review.decided_at, r.id)) if reviewed else None


def _by_question(rows: Iterable[FeedbackRow]) -> dict[str, list[FeedbackRow]]:
    grouped: dict[str, list[FeedbackRow]] = defaultdict(list)
    for row in rows:
        grouped[_key(row.question)].append(row)
    return grouped


def review_queue(rows: Iterable[FeedbackRow]) -> list[QueueItem]:
    """The unreviewed thumbs-down of users (not of the simulator), one item per question, the most rated down first,
    each with the question's earlier decision, if it had one (users rated down again since)."""
    items = []
    for group in _by_question(r for r in rows if r.comment != SIMULATED).values():
        waiting = [r for r in group if r.rating == "down" and r.review is None]
        if not waiting:
            continue
        earlier = _newest_review(group)
        items.append(QueueItem(question=_tidy(waiting[0].question), feedback_ids=[r.id for r in waiting],
                               rejected=[s for s, _ in Counter(r.symbol for r in waiting).most_common()],
                               model_versions=sorted({r.model_version for r in waiting}),
                               earlier=earlier.review if earlier else None))
    return sorted(items, key=lambda item: (-len(item.feedback_ids), item.feedback_ids[0]))


def from_feedback(rows: Iterable[FeedbackRow], split_by_symbol: dict[str, str], held_out: Iterable[str]) -> FromFeedback:
    """One label per question users rated: the newest review's (the annotator's symbol, or off-topic), else the
    symbol rated up most often (the first on a tie); as a training pair or an off-topic example, with counts of the
    ratings left out and why. One label, because two symbols for one question would be each other's negatives."""
    held_out = NearIdentical(held_out)
    pairs: list[Pair] = []
    off_topic: list[OffTopicExample] = []
    left_out: Counter[str] = Counter()
    users = []
    for row in rows:
        if row.comment == SIMULATED:
            left_out["simulated (mlops simulate)"] += 1
        elif row.rating == "down" and row.review is None:
            left_out["thumbs-down (waits for review)"] += 1
        else:
            users.append(row)
    for group in _by_question(users).values():
        chosen = _newest_review(group)
        if chosen is not None:
            label, rule = chosen.review.symbol, REVIEW_RULE
        else:
            label = Counter(r.symbol for r in group).most_common(1)[0][0]  # all thumbs-up; first seen wins a tie
            chosen, rule = next(r for r in group if r.symbol == label), RULE
        for row in group:
            if row is not chosen:
                says = row.review.symbol if row.review else row.symbol
                left_out["repeated" if says == label else "overruled by the question's newest review or most rated-up symbol"] += 1
        question, source = _tidy(chosen.question), f"{rule}:{chosen.id}"
        if question in held_out:
            left_out["an evaluation question"] += 1
        elif label is None:
            off_topic.append(OffTopicExample(question=question, source=source))
        elif label not in split_by_symbol:
            left_out["symbol not in the corpus"] += 1
        elif split_by_symbol[label] != "train":
            left_out["symbol held out for validation or test"] += 1
        else:
            pairs.append(Pair(question=question, symbol=label, rule=rule, source=source))
    return FromFeedback(pairs=pairs, off_topic=off_topic, left_out=dict(sorted(left_out.items())))
