"""The labelled training set: natural questions written by the team for the symbols they answer.

Each file under ``labelled/`` holds entries of the question (in a user's words), the symbol(s) that answer it, who
wrote it and when, and the rule ``labelled``; a file with ``train: false`` at its top holds questions that index their
symbols without being trained on. The rules a question must keep, checked by :func:`problems`:

- the symbol is in the corpus;
- the question does not name it: neither the identifier (``from_pretrained``, ``GenerationMixin``) nor its
  split into words (``from pretrained``, ``generation mixin``); a one-word name is an ordinary word and may appear;
- it copies no phrase of four or more words from the symbol's docstring (phrases of function words only aside);
- it is not an evaluation question, nor nearly one (the natural, development and fresh sets are never trained on).
"""

from __future__ import annotations

import datetime
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlops.core.errors import MlopsError
from mlops.data.corpus import Symbol
from mlops.data.questions import Pair
from mlops.data.text import clean_docstring, identifier_words, words

# libyaml's loader where PyYAML has it (ten times faster on the labelled set's thousands of entries), else the Python one.
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
LABELLED_DIR = Path(__file__).with_name("labelled")
RULE = "labelled"
# The questions of a file that says `train: false` only index their symbol (document expansion): training on the
# questions about symbols outside the public API added little and took the pipeline past 10 minutes.
INDEX_RULE = "labelled-index"
RULES = (RULE, INDEX_RULE)
COPIED_WORDS = 4  # a run of this many docstring words in a question is a copy
NEAR_IDENTICAL = 0.8  # word-set overlap (Jaccard) at which two questions count as the same question
_FUNCTION_WORDS = frozenset(
    "a an the of to in on for from with by at as is are be it its this that these those and or not no do does how can i my "
    "me we our you your what which when where why should would could will into out up if then than so all any each".split())


class LabelledQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str = Field(min_length=10, max_length=500)
    symbols: tuple[str, ...] = Field(min_length=1)
    author: str = Field(min_length=1)
    written: datetime.date
    rule: Literal["labelled"]
    train: bool = True  # False: the question indexes its symbol but is no training pair (set by its file)


def load_labelled(folder: Path = LABELLED_DIR) -> list[LabelledQuestion]:
    """Every entry of every ``*.yaml`` file in ``folder``, in file order; a bad file or entry is one clear error."""
    entries: list[LabelledQuestion] = []
    for path in sorted(Path(folder).glob("*.yaml")):
        try:
            document = yaml.load(path.read_text(encoding="utf-8"), Loader=SafeLoader)
            items, train = document["questions"], document.get("train", True)
        except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
            raise MlopsError(f"labelled set {path} is unreadable: {str(exc).splitlines()[0]}") from None
        if not isinstance(train, bool):
            raise MlopsError(f"labelled set {path}: train must be true or false, not {train!r}")
        for n, item in enumerate(items, 1):
            try:
                entries.append(LabelledQuestion.model_validate({"train": train, **item}))
            except ValidationError as exc:
                error = exc.errors()[0]
                field = ".".join(str(part) for part in error["loc"]) or "entry"
                raise MlopsError(f"labelled set {path}, entry {n}: {field}: {error['msg']}") from None
    return entries


def names_the_symbol(question: str, symbol: str) -> str | None:
    """The name (or its split) the question uses, if any; only the symbol's own name and, for a method, its class."""
    parts = symbol.split(".")
    said = " ".join(words(question))
    for name in dict.fromkeys(parts[-2:] if parts[-2][:1].isupper() else parts[-1:]):
        split = words(identifier_words(name))
        compound = len(split) > 1
        if compound and (re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", question, re.IGNORECASE)
                         or re.search(rf"\b{' '.join(split)}\b", said) or re.search(rf"\b{''.join(split)}\b", said)):
            return name
    return None


def copied_phrase(question: str, docstring: str) -> str | None:
    """A run of COPIED_WORDS words the question shares with the docstring, unless it is all function words."""
    asked, doc = words(question), " " + " ".join(words(clean_docstring(docstring))) + " "
    for i in range(len(asked) - COPIED_WORDS + 1):
        run = asked[i:i + COPIED_WORDS]
        if sum(w not in _FUNCTION_WORDS for w in run) >= 2 and f" {' '.join(run)} " in doc:
            return " ".join(run)
    return None


class NearIdentical:
    """Whether a question is (nearly) one of ``questions``: word-set overlap (Jaccard) of at least NEAR_IDENTICAL.
    The word sets are made once: thousands of questions are checked against the evaluation sets."""

    def __init__(self, questions: Iterable[str]) -> None:
        self.word_sets = [set(words(q)) for q in questions]

    def __contains__(self, question: str) -> bool:
        x = set(words(question))
        return any(len(x & y) >= NEAR_IDENTICAL * len(x | y) > 0 for y in self.word_sets)


def problems(entries: Iterable[LabelledQuestion], symbols: dict[str, Symbol], held_out: Iterable[str] = (),
             missing_ok: bool = False) -> list[str]:
    """Every rule an entry breaks, one line each (empty: the set is good). ``missing_ok``: a symbol this corpus
    lacks is not a problem (another source, or another version of it); its question is simply not used."""
    found, seen = [], Counter()
    held_out = NearIdentical(held_out)
    for n, entry in enumerate(entries, 1):
        where = f"entry {n} ({entry.question[:60]!r})"
        seen[entry.question.lower()] += 1
        if seen[entry.question.lower()] == 2:
            found.append(f"{where}: the same question is written twice")
        for name in entry.symbols:
            symbol = symbols.get(name)
            if symbol is None:
                if not missing_ok:
                    found.append(f"{where}: {name} is not in the corpus")
                continue
            if said := names_the_symbol(entry.question, name):
                found.append(f"{where}: names the symbol ({said})")
            if copied := copied_phrase(entry.question, symbol.docstring):
                found.append(f"{where}: copies {copied!r} from the docstring of {name}")
        if entry.question in held_out:
            found.append(f"{where}: is (nearly) an evaluation question; evaluation questions are never trained on")
    return found


def coverage_targets(symbols: Iterable[Symbol]) -> list[Symbol]:
    """What the set must cover: every symbol a package exports, and every documented method of an exported class."""
    symbols = list(symbols)
    exported_classes = {s.symbol for s in symbols if s.exported and s.kind == "class"}
    return [s for s in symbols
            if s.exported or (s.kind == "method" and s.symbol.rsplit(".", 1)[0] in exported_classes and s.docstring.strip())]


def coverage(entries: Iterable[LabelledQuestion], symbols: Iterable[Symbol]) -> dict:
    """How many questions each target symbol has (counts of symbols with 0, 1-2 and 3+ questions), and how many
    symbols of the whole corpus have none."""
    symbols = list(symbols)
    per_symbol = Counter(name for entry in entries for name in entry.symbols)
    counts = [per_symbol[s.symbol] for s in coverage_targets(symbols)]
    return {"targets": len(counts), "none": counts.count(0), "one_or_two": sum(1 <= c <= 2 for c in counts),
            "three_or_more": sum(c >= 3 for c in counts), "questions": sum(per_symbol.values()),
            "corpus": {"symbols": len(symbols), "none": sum(per_symbol[s.symbol] == 0 for s in symbols)}}


def labelled_pairs(entries: Iterable[LabelledQuestion], symbols: dict[str, Symbol]) -> list[Pair]:
    """Pairs with their provenance (author and date); one per answering symbol in the corpus. A question that only
    indexes its symbol gets ``INDEX_RULE``, which no training configuration names."""
    return [Pair(question=entry.question, symbol=name, rule=RULE if entry.train else INDEX_RULE,
                 source=f"written by {entry.author} on {entry.written}")
            for entry in entries for name in entry.symbols if name in symbols]
