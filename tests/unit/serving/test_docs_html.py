"""An answer's documentation as HTML: rendered from Markdown, sanitised, the highlight marked."""

from __future__ import annotations

from html.parser import HTMLParser

from mlops.data.docstring import Alignment
from mlops.serving.docs_html import render

DOCS = "https://huggingface.co/docs/transformers/v5.23.0/en/main_classes/text_generation#transformers.GenerationMixin.generate"
HOSTILE = ("Sets it *now*. <script>alert(1)</script> <img src=x onerror=alert(2)> [click](javascript:alert(3)) "
           "<a href=\"javascript:alert(4)\">x</a> [guide](../generation_strategies) [site](https://example.org/a)")


class Elements(HTMLParser):
    """Every element and attribute the HTML really has (escaped markup is text, not elements)."""

    def __init__(self, html: str):
        super().__init__()
        self.found: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


def _span(raw: str, sentence: str) -> tuple[int, int]:
    text = Alignment.of(raw).text
    start = text.index(sentence)
    return start, start + len(sentence)


def test_markdown_renders_emphasis_code_lists_and_notes():
    raw = ("Uses *greedy decoding* with `max_new_tokens`.\n\nArgs:\n    seed (`int`):\n        The seed.\n\n"
           "<Tip>\n\nSet it **once**.\n\n</Tip>")
    html, example = render(raw)
    assert "<em>greedy decoding</em>" in html and "<code>max_new_tokens</code>" in html
    assert "<li><strong>seed</strong> (<code>int</code>):" in html
    assert "<blockquote>" in html and "<strong>Note</strong>" in html and "<strong>once</strong>" in html
    assert example is None


def test_a_docstring_with_scripts_renders_inert():
    html, _ = render(HOSTILE, None, DOCS)
    elements = Elements(html).found
    assert {tag for tag, _ in elements} == {"p", "em", "a"}
    assert all(set(attrs) == {"href", "rel"} and attrs["href"].startswith("https://") for tag, attrs in elements if tag == "a")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown as the text it is


def test_links_resolve_against_the_docs_page_or_become_text():
    html, _ = render(HOSTILE, None, DOCS)
    assert '<a href="https://huggingface.co/docs/transformers/v5.23.0/en/generation_strategies" rel="noopener noreferrer">guide</a>' in html
    assert '<a href="https://example.org/a" rel="noopener noreferrer">site</a>' in html
    without_page, _ = render(HOSTILE, None, None)
    assert "guide" in without_page and "generation_strategies" not in without_page  # no page to resolve it against


def test_the_highlight_is_marked_in_every_run_it_crosses():
    raw = "First sentence here. Then *greedy* decoding with `top_k` set. Last one here."
    html, _ = render(raw, _span(raw, "Then *greedy* decoding with top_k set."))
    assert ("<mark>Then </mark><em><mark>greedy</mark></em><mark> decoding with </mark><code><mark>top_k</mark></code>"
            "<mark> set.</mark> Last one here.") in html
    assert "\ue000" not in html and "\ue001" not in html


def test_the_example_leaves_the_documentation():
    raw = "Loads it.\n\nExample:\n\n```python\n>>> model = load()\n>>> model.eval()\nModel()\n```"
    html, example = render(raw)
    assert example == "model = load()\nmodel.eval()"
    assert "load()" not in html and "Example" not in html
