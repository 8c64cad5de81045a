"""Rule-based questions from docstrings, each with the rule and source line that made it (provenance).

The rules follow the seed design ("What does X do?", "How do I <summary>?") and add two that look
more like what users type: a question built from a documented argument, and one from the summary
with the symbol's name left out, so training teaches the encoder to match intent, not names.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict

from mlops.data.corpus import Symbol
from mlops.data.text import ARG_LINE, clean_docstring, summary

_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
_LEADING_ARTICLE = re.compile(r"^(the|a|an)\s+", re.IGNORECASE)
MIN_WORDS = 3
GENERATED_QUESTION_CHARS = 300
MAX_ARGUMENT_QUESTIONS = 3  # per symbol, so long signatures do not dominate the data
TEMPLATED_RULES = frozenset({"what", "how", "summary", "argument"})  # the rules below; labelled questions are written


class Pair(BaseModel):
    """One training/evaluation example: a question and the symbol whose passage answers it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    question: str
    symbol: str
    rule: str  # which rule produced it: what | how | summary | argument
    source: str  # the docstring text it came from (provenance)


def first_sentence(text: str) -> str:
    return _SENTENCE_END.split(text, 1)[0].rstrip(".").strip()


# Docstrings that open in the imperative ("Load a model ...") rather than "Loads a model ...".
_IMPERATIVE = frozenset(
    "add apply build calculate call check clear compute convert copy create crop decode delete determine disable"
    " download enable encode estimate extract filter find format generate get initialize instantiate load make map"
    " merge move normalize pad parse prepare process push read register remove replace rescale reset resize return"
    " run save set sort split start stop tokenize truncate update upload validate wrap write".split()
)


def base_verb(word: str) -> str | None:
    """'Returns' -> 'return', 'Applies' -> 'apply', 'Load' -> 'load'; None if the word does not look like a verb."""
    w = word.lower()
    if w in _IMPERATIVE:
        return w
    if not w.isalpha() or len(w) < 4 or not w.endswith("s") or w.endswith("ss") or w in {"this", "class", "has", "is", "was", "does"}:
        return None
    if w.endswith("ies"):
        return w[:-3] + "y"
    if w.endswith(("sses", "ches", "shes", "xes", "zes")):
        return w[:-2]
    return w[:-1]


def _question_text(text: str) -> str:
    return text[:GENERATED_QUESTION_CHARS].rstrip(" ,;:") + "?"


def questions_for(symbol: Symbol) -> Iterator[Pair]:
    head = first_sentence(summary(symbol.docstring))
    words = head.split()
    yield Pair(question=f"What does {symbol.short_name} do?", symbol=symbol.symbol, rule="what", source=head)
    if len(words) >= MIN_WORDS:
        verb = base_verb(words[0])
        if verb:
            yield Pair(question=_question_text(f"How do I {verb} {' '.join(words[1:])}"), symbol=symbol.symbol, rule="how", source=head)
        elif not head.lower().startswith("see ") and "http" not in head:
            question = _question_text(f"Which {symbol.kind} is {head[0].lower()}{head[1:]}")
            yield Pair(question=question, symbol=symbol.symbol, rule="summary", source=head)
    yield from argument_questions(symbol)


def argument_questions(symbol: Symbol) -> Iterator[Pair]:
    lines = symbol.docstring.splitlines()
    made = 0
    for number, line in enumerate(lines):
        match = ARG_LINE.match(line)
        if made >= MAX_ARGUMENT_QUESTIONS:
            break
        if not match:
            continue
        text = match.group(3) or (lines[number + 1].strip() if number + 1 < len(lines) else "")
        description = first_sentence(clean_docstring(text))
        description = _LEADING_ARTICLE.sub("", description)
        if len(description.split()) >= MIN_WORDS and not description.lower().startswith(("deprecated", "see ", "if ")):
            phrase = description[0].lower() + description[1:]
            question = f"How do I choose {phrase}" if phrase.startswith("whether") else f"How can I set the {phrase}"
            source = line.strip() if match.group(3) else f"{line.strip()} {text}"
            yield Pair(question=_question_text(question), symbol=symbol.symbol, rule="argument", source=source)
            made += 1
