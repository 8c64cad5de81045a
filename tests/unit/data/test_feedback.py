"""Feedback as training data: thumbs-up pairs and reviewed thumbs-down of train-split symbols only, never an
evaluation question; the review queue holds users' unreviewed thumbs-down, one item per question."""

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from mlops.core.errors import MlopsError
from mlops.data.feedback import SIMULATED, FeedbackRow, ReviewDecision, from_feedback, parse_rows, read_export, review_queue

SPLITS = {"lib.save": "train", "lib.load": "train", "lib.held": "test", "lib.tuned": "validation"}


def row(id: int, question: str, symbol: str = "lib.save", rating: str = "up", review: dict | None = None, **extra) -> FeedbackRow:
    decided = ReviewDecision(**{"reviewer": "ana", "decided_at": "2026-12-03T09:00:00+00:00", **review}) if review else None
    return FeedbackRow(id=id, question=question, symbol=symbol, rating=rating, model_version="3", review=decided, **extra)


def test_thumbs_up_becomes_a_pair_with_its_provenance_and_the_rest_is_left_out_with_a_reason():
    rows = [row(1, "  how do I write my model to disk "), row(2, "how do I  write my model to disk"),
            row(3, "bring a model back from disk", "lib.load", "down"), row(4, "keep the weights for later", "lib.held"),
            row(5, "keep the weights safe", "lib.tuned"), row(6, "where did my model go", "lib.gone"),
            row(7, "How can I store a trained network on disk?"), row(8, "save it", comment=SIMULATED)]
    made = from_feedback(rows, SPLITS, held_out=["how can I store a trained network on disk"])
    assert [(p.question, p.symbol, p.rule, p.source) for p in made.pairs] == [
        ("how do I write my model to disk", "lib.save", "feedback", "feedback:1")]
    assert made.off_topic == []
    assert made.left_out == {"an evaluation question": 1, "repeated": 1, "simulated (mlops simulate)": 1,
                             "symbol held out for validation or test": 2, "symbol not in the corpus": 1, "thumbs-down (waits for review)": 1}


def test_a_reviewed_thumbs_down_becomes_a_pair_of_the_chosen_symbol_or_an_off_topic_example():
    rows = [row(1, "bring a model back from disk", "lib.save", "down", {"decision": "symbol", "symbol": "lib.load"}),
            row(2, "bring a model back from disk", "lib.tuned", "down", {"decision": "symbol", "symbol": "lib.load"}),
            row(3, "what should I cook tonight", "lib.save", "down", {"decision": "off-topic"}),
            row(4, "What should I cook  tonight", "lib.load", "down", {"decision": "off-topic"}),
            row(5, "keep the weights for later", "lib.save", "down", {"decision": "symbol", "symbol": "lib.held"}),
            row(6, "which transformer is stronger, Optimus Prime or Megatron", "lib.save", "down", {"decision": "off-topic"})]
    made = from_feedback(rows, SPLITS, held_out=["Which Transformer is stronger: Optimus Prime or Megatron?"])
    assert [(p.question, p.symbol, p.rule, p.source) for p in made.pairs] == [("bring a model back from disk", "lib.load", "review", "review:2")]
    assert [(q.question, q.source) for q in made.off_topic] == [("What should I cook tonight", "review:4")]
    assert made.left_out == {"an evaluation question": 1, "repeated": 2, "symbol held out for validation or test": 1}


def test_each_question_gets_one_label_the_newest_review_else_the_most_rated_up_symbol():
    at = {n: {"decided_at": f"2026-12-0{n}T09:00:00+00:00"} for n in range(1, 4)}
    rows = [row(1, "save it", "lib.save"), row(2, "save it", "lib.load"), row(3, "save it", "lib.load"),  # ups only
            row(4, "load it", "lib.save"), row(5, "load it", "lib.save", "down", {"decision": "symbol", "symbol": "lib.load", **at[1]}),
            row(6, "tea time", "lib.save"), row(7, "tea time", "lib.save", "down", {"decision": "symbol", "symbol": "lib.save", **at[1]}),
            row(8, "tea time", "lib.load", "down", {"decision": "off-topic", **at[2]}),
            row(9, "undo", "lib.save", "down", {"decision": "off-topic", **at[2]}),
            row(10, "undo", "lib.load", "down", {"decision": "symbol", "symbol": "lib.load", **at[3]})]
    made = from_feedback(rows, SPLITS, held_out=[])
    assert sorted((p.question, p.symbol, p.source) for p in made.pairs) == [
        ("load it", "lib.load", "review:5"), ("save it", "lib.load", "feedback:2"), ("undo", "lib.load", "review:10")]
    assert [(q.question, q.source) for q in made.off_topic] == [("tea time", "review:8")]
    assert made.left_out == {"overruled by the question's newest review or most rated-up symbol": 5, "repeated": 1}


def test_the_queue_holds_users_unreviewed_thumbs_down_one_item_per_question_most_rated_first():
    rows = [row(1, "pad my batch", "lib.save", "down"), row(2, "Where is the seed?", "lib.load", "down"),
            row(3, "where is the  seed?", "lib.save", "down"), row(4, "where is the seed?", "lib.load", "down"),
            row(5, "pad my batch", "lib.load", "up"), row(6, "reviewed already", "lib.save", "down", {"decision": "off-topic"}),
            row(7, "simulated", "lib.save", "down", comment=SIMULATED),
            row(8, "pad my batch", "lib.load", "down", {"decision": "symbol", "symbol": "lib.load"})]
    queue = review_queue(rows)
    assert [(i.question, i.feedback_ids, i.rejected, i.model_versions) for i in queue] == [
        ("Where is the seed?", [2, 3, 4], ["lib.load", "lib.save"], ["3"]), ("pad my batch", [1], ["lib.save"], ["3"])]
    assert queue[0].earlier is None and queue[1].earlier.symbol == "lib.load"  # rated down again after a review


def test_a_review_names_a_symbol_exactly_when_it_decides_one():
    for bad in ({"decision": "symbol"}, {"decision": "off-topic", "symbol": "lib.save"}, {"decision": "maybe"}):
        with pytest.raises(ValidationError):
            ReviewDecision(reviewer="ana", decided_at="2026-12-03T09:00:00+00:00", **bad)


def test_the_export_file_is_read_and_a_bad_line_is_one_error(tmp_path: Path):
    good = {"id": 1, "created_at": "2026-12-02T10:00:00+00:00", "question": "q?", "symbol": "lib.save", "rating": "up",
            "comment": None, "model_version": "3", "review": None}
    reviewed = {**good, "id": 2, "rating": "down",
                "review": {"decision": "off-topic", "symbol": None, "reviewer": "ana", "decided_at": "2026-12-03T09:00:00+00:00"}}
    path = tmp_path / "feedback.jsonl"
    path.write_text(json.dumps(good) + "\n\n" + json.dumps(reviewed) + "\n")
    assert read_export(path) == [row(1, "q?"), row(2, "q?", rating="down", review={"decision": "off-topic"})]
    path.write_text(json.dumps({**good, "rating": "meh"}) + "\n")
    with pytest.raises(MlopsError, match="feedback export .* is unreadable"):
        read_export(path)


def test_a_malformed_row_of_the_store_is_one_error_naming_it():
    good = {"id": 1, "question": "q?", "symbol": "lib.save", "rating": "up", "model_version": "3", "review": None}
    assert parse_rows([good]) == [row(1, "q?")]
    broken = {**good, "id": 7, "rating": "down", "review": {"decision": "symbol", "symbol": None, "reviewer": "x", "decided_at": "now"}}
    with pytest.raises(MlopsError, match=r"feedback row 7 is malformed \(.*\); fix or delete it in the feedback database"):
        parse_rows([good, broken])
