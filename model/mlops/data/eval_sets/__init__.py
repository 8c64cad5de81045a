"""Hand-written evaluation sets shipped with the package."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlops.core.errors import MlopsError

NATURAL_QUESTIONS = Path(__file__).with_name("natural_questions.yaml")
# Written separately for development (failure analysis, comparing variants), so the set above stays for reporting.
NATURAL_DEV = Path(__file__).with_name("natural_dev.yaml")
# One question per symbol chosen at random, written before anything ran on them: the labelled set's held-out check.
NATURAL_FRESH = Path(__file__).with_name("natural_fresh.yaml")
FRESH_SET = "natural_fresh"  # its name in report.json, sliced by whether the symbol has train-split labelled questions
# Questions the service should decline (chit-chat, other libraries, injections, gibberish, other languages, and
# adversarial ones that share the library's words), written before anything ran on them: the first for development,
# the second reported once per evaluation.
OFF_TOPIC_SETS = {"off_topic_dev": Path(__file__).with_name("off_topic_dev.yaml"),
                  "off_topic_test": Path(__file__).with_name("off_topic_test.yaml")}
OffTopicKind = Literal["chit-chat", "other-library", "injection", "gibberish", "other-language", "adversarial"]


class NaturalQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=5)
    expected: list[str] = Field(min_length=1)
    topic: str


def _load(path: Path, model: type[BaseModel], what: str) -> list:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        return [model.model_validate(q) for q in data["questions"]]
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValidationError) as exc:
        raise MlopsError(f"{what} question set {path} is unreadable: {str(exc).splitlines()[0]}") from None


def load_natural_questions(path: Path = NATURAL_QUESTIONS) -> list[NaturalQuestion]:
    return _load(path, NaturalQuestion, "natural")


class OffTopicQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1)
    kind: OffTopicKind


def load_off_topic_questions(path: Path) -> list[OffTopicQuestion]:
    return _load(path, OffTopicQuestion, "off-topic")
