"""Turn a symbol into the text that is indexed (its passage) and into words for lexical matching."""

from __future__ import annotations

import re

from mlops.data.corpus import Symbol

_DOC_LINK = re.compile(r"\[`~?(?:[\w]+\.)*([\w]+)`\]")  # [`~PreTrainedModel.save_pretrained`] -> save_pretrained
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SPACES = re.compile(r"\s+")
MAX_SIGNATURE_CHARS = 160
# The encoder reads 128 tokens; longer docstrings (Trainer.train, generate, ...) document their
# arguments further down, so those are indexed as extra chunks and a symbol scores its best chunk.
CHUNK_WORDS = 80
MAX_EXTRA_CHUNKS = 4


def clean_docstring(text: str) -> str:
    """Docstring markup removed and whitespace folded: what a reader (or an encoder) should see."""
    text = _DOC_LINK.sub(r"\1", text)
    text = text.replace("`", "")
    return _SPACES.sub(" ", text).strip()


def summary(docstring: str) -> str:
    """The docstring's first paragraph, cleaned."""
    return clean_docstring(docstring.strip().split("\n\n", 1)[0])


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


def passage_chunks(symbol: Symbol) -> list[str]:
    """The passage, then the rest of a long docstring in windows of CHUNK_WORDS words, each naming the symbol."""
    words = clean_docstring(symbol.docstring).split()
    end = min(len(words), CHUNK_WORDS * (MAX_EXTRA_CHUNKS + 1))
    rest = [f"{symbol.short_name}: {' '.join(words[start : start + CHUNK_WORDS])}" for start in range(CHUNK_WORDS, end, CHUNK_WORDS)]
    return [passage(symbol), *rest]
