"""The highlight check's arithmetic: what counts, what is compared, what is left to label."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.core.errors import MlopsError
from mlops.data.eval_sets import NATURAL_QUESTIONS
from mlops.evaluation.highlights import load_labels, question_set, summarise


def _row(question: str, sentences: int, highlight: str, first: str) -> dict:
    return {"question": question, "symbol": "transformers.X", "sentences": sentences, "highlight": highlight, "first": first}


ROWS = [
    _row("how do I seed?", 3, "Sets the seed.", "Helper function."),
    _row("what does it return?", 2, "Returns a dict.", "Returns a dict."),
    _row("one sentence only?", 1, "Only this.", "Only this."),
    _row("not labelled yet?", 4, "Middle sentence.", "First sentence."),
]
LABELS = {
    ("how do I seed?", "transformers.X", "Sets the seed."): True,
    ("how do I seed?", "transformers.X", "Helper function."): False,
    ("what does it return?", "transformers.X", "Returns a dict."): True,
    ("not labelled yet?", "transformers.X", "Middle sentence."): True,  # its first sentence is not: the row waits
}


def test_acceptance_is_counted_over_labelled_rows_with_a_choice():
    report = summarise(ROWS, LABELS)
    assert {k: report[k] for k in ("questions", "one_sentence", "labelled", "highlight_accepted",
                                   "first_sentence_accepted", "highlight_is_first")} == {
        "questions": 4, "one_sentence": 1, "labelled": 2, "highlight_accepted": 2, "first_sentence_accepted": 1,
        "highlight_is_first": 1,
    }
    assert report["unlabelled"] == [{"question": "not labelled yet?", "symbol": "transformers.X", "sentence": "First sentence."}]


def test_labels_file_is_validated(tmp_path: Path):
    labels = tmp_path / "labels.yaml"
    labels.write_text("- {question: q, symbol: s, sentence: t, accept: true}\n")
    assert load_labels(labels) == {("q", "s", "t"): True}
    assert load_labels(tmp_path / "missing.yaml") == {}
    labels.write_text("- {question: q, symbol: s, sentence: t, accept: true, note: typo}\n")
    with pytest.raises(MlopsError, match="labels.yaml: each label needs"):
        load_labels(labels)


def test_question_sets_are_named():
    assert question_set("test") == NATURAL_QUESTIONS
    with pytest.raises(MlopsError, match="--questions 'held-out' is not one of dev, test"):
        question_set("held-out")
