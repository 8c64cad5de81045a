"""The shipped question sets: each loads, the two share no question, and every answer exists in the real corpus.

``mlops evaluate`` would stop with an error on a bad set, but only after training; this catches an edit
to either file (a typo in a symbol, a question pasted into both) in the default test run.
"""

from collections import Counter
from typing import get_args

import pytest

from mlops.data.corpus import extract_symbols, installed_package_root
from mlops.data.dataset import dedupe_symbols
from mlops.data.eval_sets import (
    NATURAL_DEV,
    NATURAL_FRESH,
    NATURAL_QUESTIONS,
    OFF_TOPIC_SETS,
    OffTopicKind,
    load_natural_questions,
    load_off_topic_questions,
)


@pytest.fixture(scope="module")
def corpus_names() -> set[str]:
    symbols, _ = extract_symbols(installed_package_root())
    return {s.symbol for s in dedupe_symbols(symbols)}


@pytest.mark.parametrize("path", [NATURAL_QUESTIONS, NATURAL_DEV], ids=["natural", "dev"])
def test_every_expected_symbol_is_in_the_corpus(path, corpus_names):
    questions = load_natural_questions(path)
    assert len(questions) >= 40
    missing = {s for q in questions for s in q.expected} - corpus_names
    assert not missing


def test_the_sets_share_no_question():
    texts = [q.question.strip().lower() for path in (NATURAL_QUESTIONS, NATURAL_DEV) for q in load_natural_questions(path)]
    assert [t for t, n in Counter(texts).items() if n > 1] == []


def test_the_off_topic_sets_cover_every_kind_and_share_no_question_with_any_set():
    sets = {which: load_off_topic_questions(path) for which, path in OFF_TOPIC_SETS.items()}
    for questions in sets.values():
        assert set(Counter(q.kind for q in questions).values()) == {20} and len(questions) == 20 * len(get_args(OffTopicKind))
    natural = [q.question for path in (NATURAL_QUESTIONS, NATURAL_DEV, NATURAL_FRESH) for q in load_natural_questions(path)]
    texts = [q.question.strip().lower() for questions in sets.values() for q in questions] + [t.strip().lower() for t in natural]
    assert [t for t, n in Counter(texts).items() if n > 1] == []
