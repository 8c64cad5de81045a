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


class Highlight(BaseModel):
    start: int = Field(ge=0, description="offset of the first character in `text`")
    end: int = Field(ge=0, description="offset after the last character in `text`")


class Answer(BaseModel):
    symbol: str = Field(description="dotted name, e.g. transformers.trainer_utils.set_seed")
    path: str = Field(description="source file, relative to the package's parent folder")
    line: int = Field(description="line of the definition in `path`")
    score: float
    text: str = Field(description="the documentation as plain text, markup removed (at most 1200 characters)")
    kind: str | None = Field(None, description="class, function or method")
    signature: str | None = Field(None, description="the parameter list, e.g. (seed: int, deterministic: bool=False)")
    highlight: Highlight | None = Field(None, description="the sentence of `text` that best answers the question, chosen by the "
                                                          "deployed model; null when the documentation has no prose sentence")
    summary: Highlight | None = Field(None, description="the first prose sentence of `text`, the docstring's summary (the page shows "
                                                        "it before a highlight that is another sentence); null as for `highlight`")
    html: str | None = Field(None, description="the whole documentation rendered from its Markdown and sanitised, the highlight in "
                                               "<mark>, without the usage example")
    example: str | None = Field(None, description="the usage example as runnable code (doctest prompts and printed output left out)")
    source_url: str | None = Field(None, description="the definition on GitHub at the tag of the transformers version indexed")
    docs_url: str | None = Field(None, description="the symbol on its page of the Transformers documentation; null when the "
                                                   "documentation has no entry for it")


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
