"""Which sentence of an answer's documentation answers the question (extractive), scored by the deployed model.

Each symbol's prose sentences (mlops.data.docstring.sentences) that lie inside the answer's ``text`` are embedded
once, at export, by the passage encoder, and saved with the version (``Sentences``: their spans and embeddings, so a
version highlights the sentences it was exported with, whatever the code that loads it splits). Answering a question
then costs one dot product per sentence with the question's embedding the retriever already computed. A sentence's
score fuses like the retriever's: ``(1 - w) * cosine + w * (question words it holds) / (most any sentence of that
symbol holds)``, ``w`` the version's BM25 weight. The first sentence, the docstring's summary by convention (PEP 257),
counts ``SUMMARY_PRIOR`` more: a later sentence is the highlight only when it scores clearly higher (chosen on the
development questions: docs/experiments.md, the highlighted sentence). The highlight is character offsets into ``text``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlops.core.errors import MlopsError
from mlops.data.corpus import Symbol
from mlops.data.docstring import Alignment, sentences
from mlops.search.lexical import lexical_tokens

SENTENCE_MAX_TOKENS = 64
SENTENCES_FILE = "sentences.npz"
SUMMARY_PRIOR = 0.15
Spans = list[list[tuple[int, int]]]


def sentence_spans(symbol: Symbol, text_chars: int) -> list[tuple[int, int]]:
    """The symbol's prose sentences as spans of its answer text (the first ``text_chars`` of the cleaned docstring)."""
    alignment = Alignment.of(symbol.docstring)
    spans = (alignment.to_text(start, end) for start, end in sentences(symbol.docstring))
    return [span for span in spans if span is not None and span[1] <= text_chars]


def sentence_texts(symbols: Sequence[Symbol], spans: Spans) -> list[str]:
    """Every sentence's text, in corpus order (what the encoder embeds)."""
    texts = []
    for symbol, found in zip(symbols, spans, strict=True):
        text = Alignment.of(symbol.docstring).text
        texts += [text[start:end] for start, end in found]
    return texts


@dataclass(frozen=True)
class Sentences:
    """A version's highlight candidates: per symbol the spans of its sentences in its answer text, and their embeddings
    in the same order."""

    spans: Spans
    embeddings: np.ndarray
    summary_prior: float = SUMMARY_PRIOR

    def __post_init__(self):
        if self.embeddings.shape[0] != sum(map(len, self.spans)):
            raise MlopsError(f"{self.embeddings.shape[0]} sentence embeddings for {sum(map(len, self.spans))} sentences; re-export the model")

    def save(self, folder: Path) -> None:
        flat = [span for found in self.spans for span in found]
        np.savez(Path(folder) / SENTENCES_FILE, embeddings=self.embeddings, counts=np.array([len(f) for f in self.spans], dtype=np.int64),
                 spans=np.array(flat, dtype=np.int64).reshape(-1, 2), summary_prior=np.float32(self.summary_prior))

    @classmethod
    def load(cls, folder: Path, symbols: int) -> Sentences | None:
        """The version's sentences; None for a version exported without them (it highlights by words alone)."""
        path = Path(folder) / SENTENCES_FILE
        if not path.is_file():
            return None
        with np.load(path) as saved:
            counts, flat, embeddings, prior = saved["counts"], saved["spans"], saved["embeddings"], float(saved["summary_prior"])
        if len(counts) != symbols:
            raise MlopsError(f"{path} has sentences for {len(counts)} symbols, the corpus {symbols}; re-export the model")
        ends = np.cumsum(counts)
        return cls([[(int(a), int(b)) for a, b in flat[end - n:end]] for n, end in zip(counts, ends, strict=True)], embeddings, prior)


class Highlighter:
    """The sentences of every symbol's answer text and (when the version has them) their embeddings."""

    def __init__(self, symbols: Sequence[Symbol], text_chars: int, saved: Sentences | None, bm25_weight: float):
        self.spans = saved.spans if saved is not None else [sentence_spans(s, text_chars) for s in symbols]
        self.embeddings = saved.embeddings if saved is not None else None
        self.summary_prior = saved.summary_prior if saved is not None else SUMMARY_PRIOR
        self.tokens = [set(lexical_tokens(text)) for text in sentence_texts(symbols, self.spans)]
        self.starts = np.concatenate([[0], np.cumsum([len(found) for found in self.spans])]).astype(np.int64)
        # Without embeddings (a pure-BM25 version, or one exported before highlights) only the words count.
        self.bm25_weight = bm25_weight if self.embeddings is not None else 1.0

    def best(self, index: int, question_tokens: set[str], query: np.ndarray | None) -> tuple[int, int] | None:
        """The span of symbol ``index``'s answer text that best answers, or None when it has no sentence."""
        first, last = self.starts[index], self.starts[index + 1]
        if first == last:
            return None
        overlap = np.array([len(question_tokens & self.tokens[i]) for i in range(first, last)], dtype=np.float32)
        score = self.bm25_weight * overlap / max(overlap.max(), 1.0)
        if self.bm25_weight < 1.0 and query is not None:
            score += (1.0 - self.bm25_weight) * (self.embeddings[first:last] @ query)
        score[0] += self.summary_prior
        return self.spans[index][int(np.argmax(score))]
