"""Feedback as training data: thumbs-up pairs of train-split symbols only, never an evaluation question."""

import json
from pathlib import Path

import pytest

from mlops.core.errors import MlopsError
from mlops.data.feedback import FeedbackRow, feedback_pairs, read_export

SPLITS = {"lib.save": "train", "lib.load": "train", "lib.held": "test", "lib.tuned": "validation"}


def row(id: int, question: str, symbol: str = "lib.save", rating: str = "up") -> FeedbackRow:
    return FeedbackRow(id=id, question=question, symbol=symbol, rating=rating, model_version="3")


def test_thumbs_up_becomes_a_pair_with_its_provenance_and_the_rest_is_left_out_with_a_reason():
    rows = [row(1, "  how do I write my model to disk "), row(2, "how do I write my model to disk"),
            row(3, "bring a model back from disk", "lib.load", "down"), row(4, "keep the weights for later", "lib.held"),
            row(5, "keep the weights safe", "lib.tuned"), row(6, "where did my model go", "lib.gone"),
            row(7, "How can I store a trained network on disk?")]
    pairs, left_out = feedback_pairs(rows, SPLITS, held_out=["how can I store a trained network on disk"])
    assert [(p.question, p.symbol, p.rule, p.source) for p in pairs] == [("how do I write my model to disk", "lib.save", "feedback", "feedback:1")]
    assert left_out == {"an evaluation question": 1, "repeated": 1, "symbol held out for validation or test": 2,
                        "symbol not in the corpus": 1, "thumbs-down (waits for review)": 1}


def test_the_export_file_is_read_and_a_bad_line_is_one_error(tmp_path: Path):
    good = {"id": 1, "created_at": "2026-12-02T10:00:00+00:00", "question": "q?", "symbol": "lib.save", "rating": "up",
            "comment": None, "model_version": "3"}
    path = tmp_path / "feedback.jsonl"
    path.write_text(json.dumps(good) + "\n\n")
    assert read_export(path) == [row(1, "q?")]
    path.write_text(json.dumps({**good, "rating": "meh"}) + "\n")
    with pytest.raises(MlopsError, match="feedback export .* is unreadable"):
        read_export(path)
