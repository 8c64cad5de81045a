"""Turn a symbol into the text that is indexed (its passage) and into words for lexical matching."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from mlops.data.corpus import Symbol

_DOC_LINK = re.compile(r"\[`~?(?:[\w]+\.)*([\w]+)`\]")  # [`~PreTrainedModel.save_pretrained`] -> save_pretrained
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[a-z0-9]+")
_SPACES = re.compile(r"\s+")
ARG_LINE = re.compile(r"^\s*(\w+) \((.*)\):\s*(.*)$")  # HF style: "name (`type`, *optional*):" + text here or below
MAX_SIGNATURE_CHARS = 160
# The encoder reads 128 tokens, so most argument documentation lies past what the passage shows;
# each documented argument is indexed as its own short chunk and a symbol scores its best chunk.
ARGUMENT_CHUNK_WORDS = 40
MIN_ARGUMENT_WORDS = 3
BOILERPLATE_MAX_SYMBOLS = 3


def clean_docstring(text: str) -> str:
    """Docstring markup removed and whitespace folded: what a reader (or an encoder) should see."""
    text = _DOC_LINK.sub(r"\1", text)
    text = text.replace("`", "")
    return _SPACES.sub(" ", text).strip()


def summary(docstring: str) -> str:
    """The docstring's first paragraph, cleaned."""
    return clean_docstring(docstring.strip().split("\n\n", 1)[0])


def words(text: str) -> list[str]:
    """Lower-case runs of letters and digits: the words BM25 and the labelled set's checks compare."""
    return _WORD.findall(text.lower())


def identifier_words(name: str) -> str:
    """'PreTrainedModel.gradient_checkpointing_enable' -> 'Pre Trained Model gradient checkpointing enable'."""
    parts = re.split(r"[._]+", name)
    return " ".join(_CAMEL.sub(" ", part) for part in parts if part)


def passage(symbol: Symbol) -> str:
    """The indexed text: name, its words, signature, then the cleaned docstring (truncated by the encoder)."""
    signature = symbol.signature
    if len(signature) > MAX_SIGNATURE_CHARS:
        signature = signature[: MAX_SIGNATURE_CHARS - 4] + " ...)"
    return f"{symbol.short_name}{signature}\n{identifier_words(symbol.short_name)}. {clean_docstring(symbol.docstring)}"


def lexical_passage(symbol: Symbol) -> str:
    """What BM25 reads: the passage, the identifiers the symbol's source uses, and its labelled questions."""
    return "\n".join([passage(symbol), symbol.code_words, *symbol.labelled_questions])


def documented_arguments(docstring: str) -> list[tuple[str, str]]:
    """(name, cleaned description) of each argument documented HF style; the description may span lines."""
    lines = docstring.splitlines()
    arguments = []
    for number, line in enumerate(lines):
        match = ARG_LINE.match(line)
        if not match:
            continue
        description = [match.group(3)]
        for following in lines[number + 1 :]:
            if not following.strip() or ARG_LINE.match(following):
                break
            description.append(following)
        arguments.append((match.group(1), clean_docstring(" ".join(description))))
    return arguments


def encoder_passage(symbol: Symbol) -> str:
    """The passage without the signature: what the encoder reads (and trains on) for the whole symbol.

    A signature filled a third of the 128 tokens (all of the 48 used in training) with parameter names
    and defaults, which users do not ask with; BM25 still reads it in ``passage``.
    """
    return f"{symbol.short_name}\n{identifier_words(symbol.short_name)}. {clean_docstring(symbol.docstring)}"


def _argument_chunks(symbol: Symbol) -> list[tuple[str, str]]:
    """(description, chunk) for each argument documented in enough words to say something."""
    return [
        (description := " ".join(words[:ARGUMENT_CHUNK_WORDS]), f"{symbol.short_name}: {identifier_words(name)}: {description}")
        for name, text in documented_arguments(symbol.docstring)
        if len(words := text.split()) >= MIN_ARGUMENT_WORDS
    ]


def corpus_chunks(symbols: Sequence[Symbol]) -> list[list[str]]:
    """What the encoder indexes, per symbol: ``encoder_passage``, one chunk per documented argument, then one
    per labelled question (a question in a user's words matches another user's question better than a docstring).

    An argument description that more than ``BOILERPLATE_MAX_SYMBOLS`` symbols share word for word
    (the ``hidden_states`` field that dozens of model-output classes repeat, say) is boilerplate: it cannot tell those
    symbols apart, and a question that happens to match it pulls all of them above the answer.
    """
    arguments = [_argument_chunks(s) for s in symbols]
    sharing = Counter(description for chunks in arguments for description in {d for d, _ in chunks})
    return [
        [encoder_passage(s), *(chunk for description, chunk in chunks if sharing[description] <= BOILERPLATE_MAX_SYMBOLS),
         *s.labelled_questions]
        for s, chunks in zip(symbols, arguments, strict=True)
    ]
