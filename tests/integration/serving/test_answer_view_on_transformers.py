"""The answer view over every docstring of the installed transformers (read with ast, as `mlops data` reads it): the
offsets between the Markdown and the answer text hold, and every highlight renders balanced and inert."""

from __future__ import annotations

import pytest

from mlops.data.corpus import extract_symbols, installed_package_root
from mlops.data.docstring import MARK_END, MARK_START, Alignment
from mlops.data.text import clean_docstring
from mlops.search.highlight import sentence_spans
from mlops.search.retriever import ANSWER_TEXT_CHARS
from mlops.serving.docs_html import render


def _without_marks(html: str) -> str:
    return html.replace("<mark>", "").replace("</mark>", "")


@pytest.fixture(scope="module")
def symbols():
    return extract_symbols(installed_package_root())[0]


def test_every_highlight_maps_to_the_answer_text_and_renders_marked(symbols):
    assert len(symbols) > 2000
    without_sentences = 0
    for symbol in symbols:
        alignment = Alignment.of(symbol.docstring)
        assert alignment.text == clean_docstring(symbol.docstring), symbol.symbol
        spans = sentence_spans(symbol, ANSWER_TEXT_CHARS)
        without_sentences += not spans
        plain, _ = render(symbol.docstring, None)
        for start, end in spans:
            raw_start, raw_end = alignment.to_raw(start, end)
            assert alignment.to_text(raw_start, raw_end) == (start, end), symbol.symbol
            html, _ = render(symbol.docstring, (start, end))
            assert MARK_START not in html and MARK_END not in html and "<script" not in html, symbol.symbol
            # the mark adds <mark> around the sentence's runs and changes nothing else: no list, table, heading or
            # emphasis broken by where it starts or ends
            assert "<mark>" in html and _without_marks(html) == plain, symbol.symbol
    assert without_sentences < len(symbols) * 0.05  # nearly every symbol has a sentence to highlight
