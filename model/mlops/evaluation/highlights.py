"""How often the highlight is a sentence a reader would accept, checked by hand on the natural questions.

For a seeded sample of the development questions (or, reported once, of the held-out natural questions), the deployed
model highlights a sentence of the expected symbol's answer text (the symbol is given, so the check measures the
highlight, not the ranking), next to the baseline a reader would otherwise read: the first sentence. Each distinct
(question, symbol, sentence) is labelled by hand in ``LABELS`` by the rule in docs/experiments.md ("accept": the
sentence alone answers the question or says what the symbol does about it). The report counts, over the symbols with
more than one sentence (one sentence leaves no choice), how many highlights and how many first sentences were
accepted, and lists what is not labelled yet.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from mlops.core.errors import MlopsError
from mlops.core.files import write_atomic
from mlops.data.eval_sets import NATURAL_DEV, NATURAL_QUESTIONS, load_natural_questions
from mlops.search.retriever import Retriever

LABELS = NATURAL_DEV.with_name("highlight_labels.yaml")
QUESTION_SETS = {"dev": NATURAL_DEV, "test": NATURAL_QUESTIONS}
SAMPLE = 40
SEED = 25


def question_set(name: str) -> Path:
    if name not in QUESTION_SETS:
        raise MlopsError(f"--questions {name!r} is not one of {', '.join(QUESTION_SETS)}")
    return QUESTION_SETS[name]


class Label(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str
    symbol: str
    sentence: str
    accept: bool


def load_labels(path: Path = LABELS) -> dict[tuple[str, str, str], bool]:
    if not path.is_file():
        return {}
    rows = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    try:
        labels = [Label.model_validate(row) for row in rows]
    except ValidationError as error:
        raise MlopsError(f"{path}: each label needs question, symbol, sentence and accept, nothing else ({error.errors()[0]['msg']})") from None
    return {(label.question, label.symbol, label.sentence): label.accept for label in labels}


def sample_rows(retriever: Retriever, questions_file: Path, size: int = SAMPLE, seed: int = SEED) -> list[dict]:
    """The sampled questions with the highlight and the first sentence of their expected symbol's answer text."""
    index = {s.symbol: i for i, s in enumerate(retriever.symbols)}
    questions = [q for q in load_natural_questions(questions_file) if q.expected[0] in index]
    chosen = sorted(random.Random(seed).sample(range(len(questions)), min(size, len(questions))))
    rows = []
    for number in chosen:
        question = questions[number]
        at = index[question.expected[0]]
        spans = retriever.highlighter.spans[at]
        if not spans:
            continue
        query = retriever.encoder.encode_queries([question.question])[0] if retriever.encoder is not None else None
        found, first = retriever.highlight(at, retriever.question_words(question.question), query), retriever.summary(at)
        text = retriever.answer(at, 0.0)["text"]
        rows.append({"question": question.question, "symbol": question.expected[0], "sentences": len(spans),
                     "highlight": text[found["start"]:found["end"]], "first": text[first["start"]:first["end"]]})
    return rows


def summarise(rows: list[dict], labels: dict[tuple[str, str, str], bool]) -> dict:
    """Acceptance of highlights and first sentences over the multi-sentence rows, and the sentences still unlabelled."""
    choice = [r for r in rows if r["sentences"] > 1]
    unlabelled = sorted({(r["question"], r["symbol"], r[key]) for r in choice for key in ("highlight", "first")} - labels.keys())
    counted = [r for r in choice if all((r["question"], r["symbol"], r[key]) in labels for key in ("highlight", "first"))]

    def accepted(key: str) -> int:
        return sum(labels[(r["question"], r["symbol"], r[key])] for r in counted)

    return {
        "questions": len(rows), "one_sentence": len(rows) - len(choice), "labelled": len(counted),
        "highlight_accepted": accepted("highlight"), "first_sentence_accepted": accepted("first"),
        "highlight_is_first": sum(r["highlight"] == r["first"] for r in choice),
        "unlabelled": [{"question": q, "symbol": s, "sentence": t} for q, s, t in unlabelled],
        "rows": rows,
    }


def check_highlights(retriever: Retriever, out: Path, questions_file: Path = NATURAL_DEV, labels: Path = LABELS, echo=print) -> dict:
    """Write the report to ``out`` and print the figures; the unlabelled sentences are in the report to be labelled."""
    report = summarise(sample_rows(retriever, questions_file), load_labels(labels))
    if not report["rows"]:
        raise MlopsError(f"no question of {questions_file} expects a symbol of this model's corpus that has a sentence to highlight")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(report, indent=2))
    n = report["labelled"]
    echo(f"highlights: {report['questions']} questions, {report['one_sentence']} with one sentence; of {n} labelled with a choice, "
         f"highlight accepted {report['highlight_accepted']}/{n}, first sentence {report['first_sentence_accepted']}/{n} "
         f"(same sentence in {report['highlight_is_first']}); {len(report['unlabelled'])} sentences unlabelled ({out})")
    return report
