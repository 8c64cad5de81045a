"""The rules for a question and its top_k, in one place: `mlops ask`, the HTTP API, Triton's adapter and the
retriever all apply these. Free of heavy imports: the API validates a question without loading torch or MLflow."""

from __future__ import annotations

from mlops.core.errors import MlopsError

MAX_QUESTION_CHARS = 2000
DEFAULT_TOP_K = 5
MAX_TOP_K = 50


class InvalidInput(MlopsError, ValueError):
    """A question or top_k that breaks the rules; the message says which and how."""


def check_question(question: str) -> str:
    """The question without surrounding whitespace; InvalidInput when it is empty or too long."""
    question = question.strip()
    if not question:
        raise InvalidInput('the question is empty; ask something, e.g. "How do I save a model?"')
    if len(question) > MAX_QUESTION_CHARS:
        raise InvalidInput(f"the question has {len(question)} characters; keep it under {MAX_QUESTION_CHARS}")
    return question


def check_top_k(top_k: int) -> int:
    if not 1 <= top_k <= MAX_TOP_K:
        raise InvalidInput(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")
    return top_k
