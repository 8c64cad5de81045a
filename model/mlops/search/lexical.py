"""The lexical side of retrieval: tokens, BM25, and query expansion from a hand-written thesaurus."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bm25s
import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from mlops.core.errors import MlopsError
from mlops.data.text import identifier_words
from mlops.data.text import words as plain_words

QUERY_EXPANSION_FILE = Path(__file__).with_name("query_expansion.yaml")

_STOPWORDS = frozenset(bm25s.stopwords.STOPWORDS_EN) | {"how", "do", "can", "what", "i", "my", "me", "want"}


def _stem(word: str) -> str:
    """A crude suffix stripper: enough for 'checkpointing' to meet 'checkpoint' in BM25."""
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4 and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


def lexical_tokens(text: str) -> list[str]:
    return [_stem(w) for w in plain_words(identifier_words(text)) if w not in _STOPWORDS]


class QueryExpansion(BaseModel):
    """User words -> library words: a question holding every token of a key also searches for the key's words.

    Users describe what they want ("my settings"), docstrings name it ("configuration"); BM25 alone
    cannot meet the two. Added words score at ``weight`` of a word the question really has.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    weight: float = Field(gt=0, le=1)
    entries: dict[str, str] = Field(min_length=1)
    _rules: list[tuple[frozenset[str], list[str]]] = PrivateAttr()

    @field_validator("entries")
    @classmethod
    def _both_sides_have_tokens(cls, entries: dict[str, str]) -> dict[str, str]:
        # A key without tokens would fire on every question.
        for key, words in entries.items():
            if not lexical_tokens(key) or not lexical_tokens(words):
                raise ValueError(f"entry {key!r}: {words!r} has no searchable word on one side (stopwords only?)")
        return entries

    def idle_entries(self) -> list[str]:
        """Entries that add no word their key does not already hold: harmless when searching, a mistake when written."""
        return [key for key, words in self.entries.items() if set(lexical_tokens(words)) <= set(lexical_tokens(key))]

    def model_post_init(self, context: Any) -> None:
        self._rules = [(frozenset(lexical_tokens(key)), lexical_tokens(words)) for key, words in self.entries.items()]

    def terms(self, tokens: Sequence[str]) -> list[str]:
        """The words to add for a question's tokens; a word that two matching entries add counts twice."""
        present = set(tokens)
        return [word for key, words in self._rules if key <= present for word in words if word not in present]


def load_query_expansion(path: Path | None = None) -> QueryExpansion:
    """The thesaurus at ``path``, by default the one shipped with the package (read at each call, never at import,
    so that a broken file is a clear error in the command that needs it)."""
    path = path or QUERY_EXPANSION_FILE
    try:
        expansion = QueryExpansion.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise MlopsError(f"query expansion file {path} is unreadable: {str(exc).splitlines()[0]}") from None
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "the file"
        raise MlopsError(f"query expansion file {path} is invalid at {where}: {error['msg']}; fix or restore it") from None
    # Checked here, where the file is written, and not in the model: a thesaurus already evaluated and exported
    # must load as it is, so that the version answers as it was measured.
    if idle := expansion.idle_entries():
        raise MlopsError(f"query expansion file {path} is invalid at entries: entry {idle[0]!r} adds no word that its key"
                         " does not already hold; fix or remove it")
    return expansion


class BM25Index:
    """BM25 over passages; with an ``expansion``, a question also scores the words it adds, at its weight."""

    def __init__(self, passages: Sequence[str], expansion: QueryExpansion | None = None):
        self._bm25 = bm25s.BM25()
        self._bm25.index([lexical_tokens(p) for p in passages], show_progress=False)
        self.size = len(passages)
        self.expansion = expansion

    def scores(self, question: str) -> np.ndarray:
        tokens = lexical_tokens(question)
        if not tokens:
            return np.zeros(self.size, dtype=np.float32)
        scores = self._bm25.get_scores(tokens)
        added = self.expansion.terms(tokens) if self.expansion else []
        if added:
            scores = scores + self.expansion.weight * self._bm25.get_scores(added)
        return scores.astype(np.float32)
