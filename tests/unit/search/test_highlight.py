"""The highlight: the sentence of an answer's text that the deployed model scores best for the question."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlops.core.errors import MlopsError
from mlops.data.corpus import Symbol
from mlops.search.highlight import Highlighter, Sentences, sentence_spans, sentence_texts
from mlops.search.lexical import lexical_tokens


def _symbol(name: str, docstring: str) -> Symbol:
    return Symbol(symbol=f"pkg.{name}", kind="function", signature="()", docstring=docstring, path="pkg/__init__.py", line=1,
                  category="package")


SYMBOLS = [
    _symbol("set_seed", "Sets the seed of every generator. Deterministic algorithms make runs slower but repeatable."),
    _symbol("empty", "```python\ncode only\n```"),
    _symbol("long", "A first sentence of words. " + "filler words here. " * 100 + "The sentence past the answer text."),
]


def _spans(text_chars: int = 200) -> list[list[tuple[int, int]]]:
    return [sentence_spans(s, text_chars) for s in SYMBOLS]


def _sentences(embeddings: np.ndarray) -> Sentences:
    return Sentences(_spans(), embeddings)


def test_sentences_are_spans_of_the_answer_text_within_its_length():
    spans = _spans()
    texts = sentence_texts(SYMBOLS, spans)
    assert spans[0] == [(0, 33), (34, 91)] and texts[:2] == ["Sets the seed of every generator.",
                                                          "Deterministic algorithms make runs slower but repeatable."]
    assert spans[1] == []
    assert all(end <= 200 for _, end in spans[2]) and "past the answer text" not in " ".join(texts)


def test_the_best_sentence_is_the_one_the_encoder_scores_highest():
    embeddings = np.zeros((len(sentence_texts(SYMBOLS, _spans())), 2), dtype=np.float32)
    embeddings[0], embeddings[1] = [1, 0], [0, 1]  # the two set_seed sentences point different ways
    highlighter = Highlighter(SYMBOLS, 200, _sentences(embeddings), bm25_weight=0.0)
    assert highlighter.best(0, set(), np.array([0.1, 0.9], dtype=np.float32)) == (34, 91)
    assert highlighter.best(0, set(), np.array([0.9, 0.1], dtype=np.float32)) == (0, 33)
    assert highlighter.best(1, set(), np.array([1, 0], dtype=np.float32)) is None  # nothing but code


def test_the_words_decide_with_the_bm25_weight_or_without_embeddings():
    words = set(lexical_tokens("how do I make runs repeatable"))
    assert Highlighter(SYMBOLS, 200, None, bm25_weight=0.0).best(0, words, None) == (34, 91)
    embeddings = np.zeros((len(sentence_texts(SYMBOLS, _spans())), 2), dtype=np.float32)
    embeddings[0] = [1, 0]
    query = np.array([1, 0], dtype=np.float32)
    assert Highlighter(SYMBOLS, 200, _sentences(embeddings), bm25_weight=0.3).best(0, words, query) == (0, 33)  # 0.7 + 0.15 (summary) > 0.3
    assert Highlighter(SYMBOLS, 200, _sentences(embeddings), bm25_weight=0.8).best(0, words, query) == (34, 91)  # 0.2 + 0.15 (summary) < 0.8


def test_a_version_keeps_the_sentences_it_was_exported_with(tmp_path: Path):
    embeddings = np.arange(len(sentence_texts(SYMBOLS, _spans())) * 2, dtype=np.float32).reshape(-1, 2)
    _sentences(embeddings).save(tmp_path)
    loaded = Sentences.load(tmp_path, len(SYMBOLS))
    assert loaded.spans == _spans() and np.array_equal(loaded.embeddings, embeddings) and loaded.summary_prior == pytest.approx(0.15)
    # the spans come from the file, not from how the loading code splits today
    Sentences([[(0, 33)], [], []], embeddings[:1]).save(tmp_path)
    assert Highlighter(SYMBOLS, 200, Sentences.load(tmp_path, len(SYMBOLS)), 0.3).spans[0] == [(0, 33)]
    assert Sentences.load(tmp_path / "none", len(SYMBOLS)) is None
    with pytest.raises(MlopsError, match="sentences for 3 symbols, the corpus 2; re-export"):
        Sentences.load(tmp_path, 2)
    with pytest.raises(MlopsError, match="2 sentence embeddings for 1 sentences"):
        Sentences([[(0, 33)], [], []], embeddings[:2])


def test_the_summary_sentence_wins_unless_another_scores_clearly_higher():
    embeddings = np.zeros((len(sentence_texts(SYMBOLS, _spans())), 2), dtype=np.float32)
    embeddings[0], embeddings[1] = [1, 0], [0, 1]
    highlighter = Highlighter(SYMBOLS, 200, Sentences(_spans(), embeddings, summary_prior=0.15), bm25_weight=0.0)
    assert highlighter.best(0, set(), np.array([0.5, 0.6], dtype=np.float32)) == (0, 33)  # 0.5 + 0.15 > 0.6
    assert highlighter.best(0, set(), np.array([0.4, 0.6], dtype=np.float32)) == (34, 91)  # 0.4 + 0.15 < 0.6
