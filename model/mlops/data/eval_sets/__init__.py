"""Hand-written evaluation sets shipped with the package."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlops.core.errors import MlopsError

NATURAL_QUESTIONS = Path(__file__).with_name("natural_questions.yaml")
# Written separately for development (failure analysis, comparing variants), so the set above stays for reporting.
NATURAL_DEV = Path(__file__).with_name("natural_dev.yaml")
# One question per symbol chosen at random, written before anything ran on them: the labelled set's held-out check.
NATURAL_FRESH = Path(__file__).with_name("natural_fresh.yaml")
FRESH_SET = "natural_fresh"  # its name in report.json, sliced by whether the symbol has train-split labelled questions


class NaturalQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=5)
    expected: list[str] = Field(min_length=1)
    topic: str


def load_natural_questions(path: Path = NATURAL_QUESTIONS) -> list[NaturalQuestion]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        return [NaturalQuestion.model_validate(q) for q in data["questions"]]
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValidationError) as exc:
        raise MlopsError(f"natural question set {path} is unreadable: {str(exc).splitlines()[0]}") from None
