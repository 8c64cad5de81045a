"""Request and response bodies of the ``/v1`` API (pydantic: FastAPI validates and documents them)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from mlops.core.inputs import DEFAULT_TOP_K, MAX_QUESTION_CHARS, MAX_TOP_K

MAX_COMMENT_CHARS = 2000

# strip first, then length checks: "   " is an empty question, not a 3-character one.
Question = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUESTION_CHARS)]


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"question": "How do I save a model?", "top_k": 5}})

    question: Question
    top_k: int = Field(DEFAULT_TOP_K, ge=1, le=MAX_TOP_K, strict=True)


class Answer(BaseModel):
    symbol: str
    path: str
    line: int
    score: float
    text: str


class AskResponse(BaseModel):
    answers: list[Answer] = Field(description="best first; empty when the model abstains")
    model_version: str
    latency_ms: float
    abstained: bool = Field(False, description="true when nothing in the corpus is a credible answer")
    reason: str | None = Field(None, description="why the model abstained")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: Question
    symbol: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
    rating: Literal["up", "down"]
    comment: Annotated[str, StringConstraints(max_length=MAX_COMMENT_CHARS)] | None = None
    model_version: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class FeedbackCreated(BaseModel):
    id: int


class ErrorBody(BaseModel):
    error: str
    field: str | None = None
