"""Hybrid retrieval over the symbol corpus: dense (the encoder) fused with BM25.

A ``Retriever`` is what gets deployed: ``save`` writes a self-contained folder (encoder weights,
corpus, passage embeddings, fusion weight) that Triton's python backend ``load``s, so Triton and
the in-process path answer with the same code and the same numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import ValidationError

from mlops.core import wire
from mlops.core.errors import MlopsError
from mlops.core.inputs import DEFAULT_TOP_K, check_question, check_top_k
from mlops.data.corpus import Symbol
from mlops.data.text import clean_docstring, corpus_chunks, lexical_passage
from mlops.search.encoder import Encoder, model_fingerprint
from mlops.search.highlight import SENTENCE_MAX_TOKENS, Highlighter, Sentences, sentence_spans, sentence_texts
from mlops.search.lexical import BM25Index, QueryExpansion, lexical_tokens
from mlops.search.settings import PASSAGE_MAX_TOKENS, PUBLIC_API_PRIOR, TORCH_FP32, RetrievalSettings

if TYPE_CHECKING:
    from mlops.search.onnx_encoder import OnnxEncoder

ANSWER_TEXT_CHARS = 1200


class Retriever:
    """Score = (1 - w) * cosine + w * BM25 / (max BM25 of that question) + prior * (symbol is exported).

    The cosine is the symbol's best chunk, a labelled-question chunk counting ``labelled_chunk_discount`` less.
    BM25 reads the question expanded by ``query_expansion`` (None: the question's own words only).
    ``sentences`` (mlops.search.highlight) let each answer name the sentence that answers.
    """

    def __init__(self, encoder: Encoder | OnnxEncoder | None, symbols: list[Symbol], embeddings: np.ndarray | None, bm25_weight: float,
                 public_api_prior: float = PUBLIC_API_PRIOR, query_expansion: QueryExpansion | None = None,
                 labelled_chunk_discount: float = 0.0, abstain_below: float | None = None,
                 sentences: Sentences | None = None):
        if not 0.0 <= bm25_weight <= 1.0:
            raise MlopsError(f"bm25_weight {bm25_weight} is outside [0, 1]")
        if encoder is None and bm25_weight < 1.0:
            raise MlopsError("a retriever without an encoder must be pure BM25 (bm25_weight 1.0)")
        if encoder is None and abstain_below is not None:
            raise MlopsError("a retriever without an encoder cannot abstain: its confidence is the encoder's cosine")
        self.abstain_below = abstain_below
        self.encoder = encoder
        self.symbols = symbols
        self.embeddings = embeddings  # one row per chunk; chunks of one symbol are contiguous
        counts = [len(chunks) for chunks in corpus_chunks(symbols)]
        self.chunk_starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        if embeddings is not None and embeddings.shape[0] != sum(counts):
            raise MlopsError(f"{embeddings.shape[0]} embeddings for {sum(counts)} passage chunks; re-export the model")
        self.labelled_chunk_discount = labelled_chunk_discount
        # corpus_chunks puts a symbol's labelled questions last among its chunks.
        self.chunk_bias = np.zeros(sum(counts), dtype=np.float32)
        for end, symbol in zip(np.cumsum(counts), symbols, strict=True):
            self.chunk_bias[end - len(symbol.labelled_questions):end] = -labelled_chunk_discount
        self.bm25_weight = bm25_weight
        self.prior = public_api_prior * np.array([s.exported for s in symbols], dtype=np.float32)
        self.public_api_prior = public_api_prior
        self.bm25 = BM25Index([lexical_passage(s) for s in symbols], query_expansion)
        self.sentences = sentences

    @cached_property
    def highlighter(self) -> Highlighter:
        # Built on first use (a reply): evaluation's retrievers only rank and so never pay for it.
        return Highlighter(self.symbols, ANSWER_TEXT_CHARS, self.sentences, self.bm25_weight)

    @cached_property
    def answer_texts(self) -> list[str]:
        # Cleaned once per symbol, on first use: a reply's answers would otherwise clean their docstrings per question.
        return [clean_docstring(s.docstring)[:ANSWER_TEXT_CHARS] for s in self.symbols]

    @classmethod
    def from_settings(cls, settings: RetrievalSettings, encoder: Encoder | OnnxEncoder | None, symbols: list[Symbol],
                      embeddings: np.ndarray | None, sentences: Sentences | None = None) -> Retriever:
        if encoder is not None and encoder.variant != settings.encoder_variant:
            raise MlopsError(f"the settings ask for the {settings.encoder_variant} encoder, not {encoder.variant}")
        return cls(encoder, symbols, embeddings, settings.bm25_weight, settings.public_api_prior, settings.query_expansion,
                   settings.labelled_chunk_discount, settings.abstain_below, sentences)

    @property
    def query_expansion(self) -> QueryExpansion | None:
        return self.bm25.expansion

    @property
    def settings(self) -> RetrievalSettings:
        return RetrievalSettings(bm25_weight=self.bm25_weight, public_api_prior=self.public_api_prior, query_expansion=self.query_expansion,
                                 labelled_chunk_discount=self.labelled_chunk_discount,
                                 encoder_variant=self.encoder.variant if self.encoder else TORCH_FP32, abstain_below=self.abstain_below)

    def dense_scores(self, questions: Sequence[str], queries: np.ndarray | None = None) -> np.ndarray:
        """(questions x corpus) cosine of each symbol's best chunk, a labelled-question chunk discounted; ``queries``:
        the questions' embeddings when already computed."""
        queries = self.encoder.encode_queries(questions) if queries is None else queries
        chunk_scores = queries @ self.embeddings.T + self.chunk_bias
        return np.maximum.reduceat(chunk_scores, self.chunk_starts, axis=1)

    def confidences(self, questions: Sequence[str]) -> np.ndarray:
        """Per question, how close the corpus comes at all: the best dense score (what ``abstain_below`` reads)."""
        return self.dense_scores(questions).max(axis=1)

    def components(self, questions: Sequence[str], queries: np.ndarray | None = None) -> tuple[np.ndarray | None, np.ndarray]:
        """(questions x corpus) dense scores (best chunk) and BM25 scores scaled to [0, 1] per question."""
        dense = self.dense_scores(questions, queries) if self.encoder is not None else None
        lexical = np.stack([self.bm25.scores(q) for q in questions])
        lexical /= np.maximum(lexical.max(axis=1, keepdims=True), 1e-9)
        return dense, lexical

    def fuse(self, dense: np.ndarray | None, lexical: np.ndarray | None, bm25_weight: float) -> np.ndarray:
        total = np.tile(self.prior, (len(dense if dense is not None else lexical), 1))
        if bm25_weight < 1.0:
            total += (1.0 - bm25_weight) * dense
        if bm25_weight > 0.0:
            total += bm25_weight * lexical
        return total

    def scores(self, questions: Sequence[str]) -> np.ndarray:
        """(questions x corpus) fused scores."""
        return self.fuse(*self.components(questions), self.bm25_weight)

    def rank(self, questions: Sequence[str], top_k: int, scores: np.ndarray | None = None) -> list[list[tuple[int, float]]]:
        """Per question, the best ``top_k`` (corpus index, score) pairs, best first (ties by corpus order)."""
        scores = self.scores(questions) if scores is None else scores
        top_k = min(top_k, len(self.symbols))
        ranked = []
        for row in scores:
            idx = np.argpartition(-row, top_k - 1)[:top_k]
            idx = idx[np.lexsort((idx, -row[idx]))]
            ranked.append([(int(i), float(row[i])) for i in idx])
        return ranked

    def search(self, questions: Sequence[str], top_k: int = DEFAULT_TOP_K) -> list[list[dict]]:
        """Per question, the best ``top_k`` answers as plain dicts, whatever the confidence."""
        questions = [check_question(q) for q in questions]
        check_top_k(top_k)
        return [[self.answer(i, score) for i, score in hits] for hits in self.rank(questions, top_k)]

    def reply(self, questions: Sequence[str], top_k: int = DEFAULT_TOP_K) -> list[dict]:
        """What the service says to each question (the wire's reply, mlops.core.wire): the best ``top_k`` answers,
        or none with the reason when the confidence is under ``abstain_below``."""
        questions = [check_question(q) for q in questions]
        check_top_k(top_k)
        encoded = self.encoder.encode_queries(questions) if self.encoder is not None else None
        dense, lexical = self.components(questions, encoded)
        queries = encoded if encoded is not None else [None] * len(questions)  # a pure-BM25 version highlights by words
        confidence = dense.max(axis=1) if dense is not None else np.full(len(questions), np.nan)  # as confidences()
        ranked = self.rank(questions, top_k, self.fuse(dense, lexical, self.bm25_weight))
        replies = []
        for question, query, hits, best in zip(questions, queries, ranked, confidence, strict=True):
            if self.abstain_below is not None and best < self.abstain_below:
                replies.append(wire.reply([], float(best), f"nothing in the Transformers code base is close to this question (best match "
                                                           f"{best:.2f}, needs {self.abstain_below:.2f}): is it about the library?"))
                continue
            words = self.question_words(question)
            answers = [{**self.answer(i, score), "highlight": self.highlight(i, words, query), "summary": self.summary(i)}
                       for i, score in hits]
            replies.append(wire.reply(answers, None if np.isnan(best) else float(best)))
        return replies

    def question_words(self, question: str) -> set[str]:
        """The words a highlight matches: the question's BM25 tokens and the words its expansion adds."""
        tokens = lexical_tokens(question)
        return set(tokens) | set(self.query_expansion.terms(tokens) if self.query_expansion else ())

    def highlight(self, index: int, question_words: set[str], query: np.ndarray | None) -> dict | None:
        """The answering sentence of symbol ``index`` as ``{"start", "end"}`` offsets into its answer's ``text``."""
        span = self.highlighter.best(index, question_words, query)
        return None if span is None else {"start": span[0], "end": span[1]}

    def summary(self, index: int) -> dict | None:
        """The first sentence of symbol ``index``'s answer text, the docstring's summary: a reader sees it beside a
        highlight that is another sentence."""
        spans = self.highlighter.spans[index]
        return {"start": spans[0][0], "end": spans[0][1]} if spans else None

    def answer(self, index: int, score: float) -> dict:
        s = self.symbols[index]
        return {
            "symbol": s.symbol,
            "kind": s.kind,
            "signature": s.signature,
            "path": s.path,
            "line": s.line,
            "score": round(score, 6),
            "text": self.answer_texts[index],
            "docstring": s.docstring,
            "source_url": s.source_url,
            "docs_url": s.docs_url,
        }

    # -- the deployable folder ------------------------------------------------------------------
    def save(self, folder: Path, manifest: dict) -> None:
        """Write encoder, corpus, embeddings and settings into ``folder`` (which must be new or empty)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.encoder.save(folder / "encoder")
        with open(folder / "corpus.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(s.model_dump_json() + "\n" for s in self.symbols)
        np.save(folder / "embeddings.npy", self.embeddings)
        if self.sentences is not None:
            self.sentences.save(folder)
        settings = {**self.settings.model_dump(), **manifest}
        (folder / "retrieval.json").write_text(json.dumps(settings, indent=2, sort_keys=True), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, threads: int | None = None) -> Retriever:
        folder = Path(folder)
        settings_file = folder / "retrieval.json"
        if not settings_file.is_file():
            raise MlopsError(f"{folder} is not an exported model (retrieval.json missing); run `mlops deploy`")
        settings = json.loads(settings_file.read_text(encoding="utf-8"))
        symbols = [Symbol.model_validate_json(line) for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
        embeddings = np.load(folder / "embeddings.npy")
        # The settings travel with the export, so a version answers as it did when deployed.
        try:
            retrieval = RetrievalSettings.model_validate({key: settings[key] for key in RetrievalSettings.model_fields if key in settings})
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise MlopsError(f"{settings_file}: {where} is invalid ({error['msg']}); re-export the model") from None
        return cls.from_settings(retrieval, query_encoder(folder / "encoder", retrieval.encoder_variant, threads), symbols, embeddings,
                                 Sentences.load(folder, len(symbols)))


def without_labelled_questions(symbols: list[Symbol], embeddings: np.ndarray | None) -> tuple[list[Symbol], np.ndarray | None]:
    """The corpus and its chunk embeddings without the labelled-question chunks: the index of the plain methods."""
    keep = np.concatenate([np.arange(len(chunks)) < len(chunks) - len(s.labelled_questions)
                           for chunks, s in zip(corpus_chunks(symbols), symbols, strict=True)])
    plain = [s.model_copy(update={"labelled_questions": ()}) for s in symbols]
    return plain, (None if embeddings is None else embeddings[keep])


def query_encoder(folder: Path, variant: str, threads: int | None = None) -> Encoder | OnnxEncoder:
    """The encoder of ``variant`` saved in ``folder`` (by ``Encoder.save`` or ``OnnxEncoder.save``)."""
    if variant == TORCH_FP32:
        return Encoder(folder, threads=threads)
    from mlops.search.onnx_encoder import OnnxEncoder  # onnxruntime only where an ONNX variant is served

    return OnnxEncoder(folder, variant, threads)


def corpus_embeddings(encoder: Encoder, symbols: list[Symbol], cache_dir: Path | None, progress=None) -> np.ndarray:
    """Embeddings of every passage chunk, cached on disk by (model weights hash, chunks hash): encoding is the slow part."""
    return _cached_encoding(encoder, [chunk for chunks in corpus_chunks(symbols) for chunk in chunks], PASSAGE_MAX_TOKENS,
                            cache_dir, progress)


def encode_sentences(encoder: Encoder, symbols: list[Symbol], cache_dir: Path | None, progress=None) -> Sentences:
    """Every answer text's sentences (mlops.search.highlight) and their embeddings, cached as ``corpus_embeddings``."""
    spans = [sentence_spans(s, ANSWER_TEXT_CHARS) for s in symbols]
    return Sentences(spans, _cached_encoding(encoder, sentence_texts(symbols, spans), SENTENCE_MAX_TOKENS, cache_dir, progress))


def _cached_encoding(encoder: Encoder, texts: list[str], max_tokens: int, cache_dir: Path | None, progress) -> np.ndarray:
    if cache_dir is None:
        return encoder.encode(texts, max_tokens, progress=progress)
    texts_hash = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = Path(cache_dir) / "embeddings" / f"{model_fingerprint(encoder.path)}-{max_tokens}-{texts_hash}.npy"
    if path.is_file():
        return np.load(path)
    embeddings = encoder.encode(texts, max_tokens, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, embeddings)
    os.replace(tmp, path)
    return embeddings
