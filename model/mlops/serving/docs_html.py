"""An answer's documentation as safe HTML: its docstring's Markdown rendered, the highlighted sentence marked.

markdown-it-py renders CommonMark with raw HTML off (a ``<script>`` in a docstring is text), and nh3 (the Rust
ammonia sanitiser) then keeps only the tags and attributes listed here, whatever the renderer produced. The
highlight travels through the Markdown as two private-use characters (mlops.data.docstring); the renderer turns
them into ``<mark>`` inside each text run, so the markup nests correctly even when the sentence crosses emphasis
or code.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urljoin, urlsplit

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml

from mlops.data.docstring import MARK_END, MARK_START, Alignment, to_markdown

ALLOWED_TAGS = {"p", "em", "strong", "code", "pre", "a", "ul", "ol", "li", "blockquote", "mark", "br", "hr",
                "table", "thead", "tbody", "tr", "th", "td", "h1", "h2", "h3", "h4", "h5", "h6"}
# No style attribute: the page's Content-Security-Policy refuses inline styles (a table's alignment is lost, no more).
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "code": {"class"}}
URL_SCHEMES = {"http", "https", "mailto"}


def _marked(content: str, env: dict) -> str:
    """``content`` escaped, its highlighted parts in ``<mark>`` (the state carries over from run to run)."""
    out, piece = [], []

    def flush() -> None:
        if piece:
            text = escapeHtml("".join(piece))
            out.append(f"<mark>{text}</mark>" if env["inside"] else text)
            piece.clear()

    for char in content:
        if char in (MARK_START, MARK_END):
            flush()
            env["inside"] = char == MARK_START
        else:
            piece.append(char)
    flush()
    return "".join(out)


def _text(_renderer, tokens, idx, _options, env) -> str:
    return _marked(tokens[idx].content, env)


def _code_inline(_renderer, tokens, idx, _options, env) -> str:
    return f"<code>{_marked(tokens[idx].content, env)}</code>"


def _code(_renderer, tokens, idx, _options, _env) -> str:
    token = tokens[idx]
    language = token.info.strip().split(" ")[0] if token.type == "fence" else ""
    css = f' class="language-{escapeHtml(language)}"' if language else ""
    return f"<pre><code{css}>{escapeHtml(token.content.replace(MARK_START, '').replace(MARK_END, ''))}</code></pre>\n"


def _link_open(renderer, tokens, idx, options, env) -> str:
    """A relative link (``../generation_strategies``) resolves against the symbol's docs page, where doc-builder
    writes it; without that page it is plain text."""
    token = tokens[idx]
    href = token.attrGet("href") or ""
    if not urlsplit(href).scheme:
        if not env["base"]:
            token.meta["dropped"] = True
            return ""
        token.attrSet("href", urljoin(env["base"], href))
    return renderer.renderToken(tokens, idx, options, env)


def _link_close(renderer, tokens, idx, options, env) -> str:
    opening = next(t for t in reversed(tokens[:idx]) if t.type == "link_open" and t.level == tokens[idx].level)
    return "" if opening.meta.get("dropped") else renderer.renderToken(tokens, idx, options, env)


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    for rule, function in (("text", _text), ("code_inline", _code_inline), ("fence", _code), ("code_block", _code),
                           ("link_open", _link_open), ("link_close", _link_close)):
        md.add_render_rule(rule, function)
    return md


_MD = _markdown()


def with_marks(docstring: str, highlight: tuple[int, int] | None) -> str:
    """``docstring`` with the highlight (a span of its ``text``, mlops.data.docstring.Alignment) between marks."""
    span = Alignment.of(docstring).to_raw(*highlight) if highlight else None
    if span is None:
        return docstring
    start, end = span
    return docstring[:start] + MARK_START + docstring[start:end] + MARK_END + docstring[end:]


@lru_cache(maxsize=4096)  # popular questions bring the same answers back; a docstring takes ~0.4 ms to render
def render(docstring: str, highlight: tuple[int, int] | None = None, docs_url: str | None = None) -> tuple[str, str | None]:
    """(the documentation as sanitised HTML with the highlight in ``<mark>``, the usage example's code or None)."""
    markdown, example = to_markdown(with_marks(docstring, highlight))
    html = _MD.render(markdown, {"inside": False, "base": docs_url})
    clean = nh3.clean(html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes=URL_SCHEMES,
                      link_rel="noopener noreferrer")
    return clean, example
