"""A docstring's structure: its prose sentences, its usage example, and its Markdown for a reader.

Transformers docstrings are Markdown with the Hugging Face doc-builder's conventions: ``Args:``-style section
headers over indented blocks, ``name (`type`):`` argument entries, ``<Tip>`` blocks, ``[`~Class.method`]`` links
and examples as fenced doctest blocks. Everything here is plain string work, shared by the highlighter (which
sentence answers), the API (HTML) and the CLI (terminal).

Offsets: ``text`` (what ``/v1/ask`` returns) is ``clean_docstring`` of the docstring; ``Alignment`` maps character
spans between the raw docstring and that text, whitespace token by whitespace token, so a sentence found in the raw
Markdown is highlighted in ``text`` and the other way round.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from mlops.data.text import ARG_LINE, clean_docstring

# Private-use characters a renderer replaces with highlight markup: they survive every transform below.
MARK_START, MARK_END = "\ue000", "\ue001"
_MARKS = f"[{MARK_START}{MARK_END}]*"

_TOKEN = re.compile(r"\S+")
_SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Params|Attributes|Kwargs|Other Parameters|Returns?|Raises|Yields?"
                      r"|Examples?|Example usage|Usage|Notes?|Warnings?|See also|References?)\s*:\s*$", re.IGNORECASE)
_ARGUMENT_SECTIONS = {"args", "arguments", "parameters", "params", "attributes", "kwargs", "other parameters"}
_EXAMPLE_SECTIONS = {"example", "examples", "example usage", "usage"}
_FENCE = re.compile(r"^\s*(```|~~~)")
_TIP_OPEN = re.compile(r"^(\s*)<Tip(\s+warning=\{?(true|True)\}?)?\s*>\s*$")
_TIP_CLOSE = re.compile(r"^\s*</Tip>\s*$")
_ARGUMENT = re.compile(rf"^(\s*)({_MARKS})(\w+) \((.*)\):\s*(.*)$")  # ARG_LINE, a highlight mark allowed before the name
_HF_LINK = re.compile(r"\[`(~?)((?:\w+\.)*\w+)`\]")
# A sentence ends at . ! or ? before a space and a capital, a backquote, a link or an emphasis; not after e.g./i.e.
_SENTENCE_END = re.compile(r"(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\betc\.)(?<!\bvs\.)(?<=[.!?])(\s+)(?=[A-Z`\[*(\"'])")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+\.)\s+")
_RULE = re.compile(r"^\s*([-=*_])\1{2,}\s*$")
_LABEL = re.compile(r"^\s*\*\*[^*]+\*\*:?\s*$")  # a line in bold alone: a heading in all but name
MIN_SENTENCE_WORDS = 3


@dataclass(frozen=True)
class Alignment:
    """The raw docstring's whitespace tokens and where each lands in ``text`` (``clean_docstring`` of it)."""

    text: str
    raw_starts: tuple[int, ...]
    raw_ends: tuple[int, ...]
    text_starts: tuple[int, ...]
    text_ends: tuple[int, ...]

    @classmethod
    def of(cls, raw: str) -> Alignment:
        pieces, raw_starts, raw_ends, text_starts, text_ends, at = [], [], [], [], [], 0
        for token in _TOKEN.finditer(raw):
            # Only backquotes clean away or change within a whitespace token (a link's markup holds them too).
            cleaned = clean_docstring(token.group()) if "`" in token.group() else token.group()
            if not cleaned:
                continue  # a token that cleans away (a lone fence of backquotes) has no place in the text
            at += bool(pieces)
            pieces.append(cleaned)
            raw_starts.append(token.start())
            raw_ends.append(token.end())
            text_starts.append(at)
            at += len(cleaned)
            text_ends.append(at)
        return cls(" ".join(pieces), tuple(raw_starts), tuple(raw_ends), tuple(text_starts), tuple(text_ends))

    def to_text(self, start: int, end: int) -> tuple[int, int] | None:
        """The text span of the raw span's whole tokens (None when it holds none)."""
        first = bisect.bisect_left(self.raw_starts, start)
        last = bisect.bisect_right(self.raw_ends, end) - 1
        return (self.text_starts[first], self.text_ends[last]) if first <= last else None

    def to_raw(self, start: int, end: int) -> tuple[int, int] | None:
        """The raw span of the text span's whole tokens (None when it holds none)."""
        first = bisect.bisect_left(self.text_starts, start)
        last = bisect.bisect_right(self.text_ends, end) - 1
        return (self.raw_starts[first], self.raw_ends[last]) if first <= last else None


def _code_indents(lines: list[str]) -> list[int]:
    """Per line, the indentation from which it is an indented code block once ``to_markdown`` has dedented its section
    (4 past the section's own indentation; 8 in an argument list, whose entries' text becomes list-item text)."""
    limits = [4] * len(lines)
    i = 0
    while i < len(lines):
        section = _SECTION.match(lines[i])
        if not section:
            i += 1
            continue
        end = _block_end(lines, i + 1, len(section.group(1)))
        base = min((_indent(line) for line in lines[i + 1:end] if line.strip()), default=0)
        step = 8 if section.group(2).lower() in _ARGUMENT_SECTIONS else 4
        limits[i + 1:end] = [base + step] * (end - i - 1)
        i = max(end, i + 1)
    return limits


def _prose_lines(raw: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of each line: "prose", "argument" (an argument entry's first line), "item" (a list item's
    first line) or "skip" (code, fenced or indented, section headers, Tip tags, blank lines)."""
    lines = raw.split("\n")
    limits = _code_indents(lines)
    found, at, in_fence, in_code = [], 0, False, False
    for line, limit in zip(lines, limits, strict=True):
        start, end = at, at + len(line)
        at = end + 1
        blank = not line.strip()
        # an indented code block starts after a blank line (or a skipped one) and runs while indented or blank
        in_code = not in_fence and not _FENCE.match(line) and (blank and in_code or not blank and _indent(line) >= limit
                                                                and (in_code or not found or found[-1][2] == "skip"))
        if _FENCE.match(line):
            in_fence = not in_fence
            kind = "skip"
        elif in_fence or in_code or blank or _SECTION.match(line) or _TIP_OPEN.match(line) or _TIP_CLOSE.match(line) \
                or line.lstrip().startswith((">>>", "...", "|", ">", "#")) or _LABEL.match(line):
            kind = "skip"  # doctest lines, table rows, quotes (doc-builder's parameter groups), headings, bold labels
        elif _RULE.match(line):
            kind = "skip"  # a rule, or the underline of the heading on the line before it
            if found and found[-1][2] != "skip":
                found[-1] = (found[-1][0], found[-1][1], "skip")
        elif ARG_LINE.match(line):
            kind = "argument"
        elif _LIST_ITEM.match(line):
            kind = "item"
        else:
            kind = "prose"
        found.append((start, end, kind))
    return found


def paragraphs(raw: str) -> list[tuple[int, int]]:
    """Raw spans of the prose blocks: runs of prose lines, each argument entry and list item starting its own."""
    blocks: list[list[int]] = []
    previous = "skip"
    for start, end, kind in _prose_lines(raw):
        if kind == "skip":
            previous = kind
            continue
        if previous == "skip" or kind in ("argument", "item"):
            blocks.append([start, end])
        else:
            blocks[-1][1] = end
        previous = kind
    return [(start, end) for start, end in blocks]


def sentences(raw: str) -> list[tuple[int, int]]:
    """Raw spans of the docstring's prose sentences, in order. Code, headers, Tip tags and list items are not
    sentences, nor is a lead-in to what follows it (``... as follows:``) unless it is the first sentence, the summary.
    A fragment of fewer than ``MIN_SENTENCE_WORDS`` words joins its neighbour in its block (the one before it, or the
    one after it when it comes first)."""
    spans: list[tuple[int, int]] = []
    for block_start, block_end in paragraphs(raw):
        block = raw[block_start:block_end]
        if _LIST_ITEM.match(block):
            continue
        begin, found = len(block) - len(block.lstrip()), []
        for end in _SENTENCE_END.finditer(block):
            found.append((begin, end.start(1)))
            begin = end.end(1)
        found.append((begin, len(block.rstrip())))
        merged: list[tuple[int, int]] = []
        for start, end in found:
            short = len(block[start:end].split()) < MIN_SENTENCE_WORDS
            if merged and (short or len(block[merged[-1][0]:merged[-1][1]].split()) < MIN_SENTENCE_WORDS):
                merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        spans += [(block_start + start, block_start + end) for start, end in merged
                  if end > start and (not spans and start == merged[0][0] or not block[start:end].endswith(":"))]
    return spans


# -- the example and the Markdown ------------------------------------------------------------------


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """The index after a section's block: its lines are blank or indented deeper than ``indent``."""
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return end


def _dedent(lines: list[str]) -> list[str]:
    depth = min((_indent(line) for line in lines if line.strip()), default=0)
    return [line[depth:] for line in lines]


def _argument_list(lines: list[str]) -> list[str]:
    """An argument section as a Markdown list: ``- **name** (`type`): text``, the rest of each entry nested under it."""
    out, entry_indent = [], None
    for line in lines:
        match = _ARGUMENT.match(line)
        if match and (entry_indent is None or _indent(line) <= entry_indent):
            entry_indent = len(match.group(1))
            # a mark goes inside the bold: before ``**`` it would stop a name like ``_ids`` opening the emphasis
            out.append(f"- **{match.group(2)}{match.group(3)}** ({match.group(4)}): {match.group(5)}".rstrip())
        elif entry_indent is None or not line.strip():
            out.append(line)
        else:  # a continuation: at least two spaces deeper than the item's dash, relative depth kept
            out.append("  " + line[min(_indent(line), entry_indent + 4):] if _indent(line) > entry_indent else line)
    return out


def _example_code(lines: list[str]) -> tuple[str | None, int, int]:
    """The first fenced code block of ``lines`` as runnable code (doctest prompts taken off, printed output left
    out), with the index range it spans."""
    start = next((i for i, line in enumerate(lines) if _FENCE.match(line)), None)
    if start is None:
        return None, 0, 0
    end = next((i for i in range(start + 1, len(lines)) if _FENCE.match(lines[i])), len(lines))  # unclosed: to the end
    body = _dedent(lines[start + 1:end])
    if any(line.startswith(">>>") for line in body):
        body = [line[4:] if line[3:4] == " " else "" for line in body if line.startswith((">>>", "..."))]
    code = "\n".join(body).strip("\n")
    return (code or None), start, end + 1


def _tips_as_notes(lines: list[str]) -> list[str]:
    """``<Tip>`` (``<Tip warning={true}>``) blocks as Markdown block quotes led by **Note** (**Warning**)."""
    out, quote = [], None
    for line in lines:
        opened = _TIP_OPEN.match(line)
        if opened:
            quote = opened.group(1)
            out.append(f"{quote}> **{'Warning' if opened.group(2) else 'Note'}**")
            out.append(f"{quote}>")
        elif quote is not None and _TIP_CLOSE.match(line):
            quote = None
        elif quote is not None:
            out.append(f"{quote}> {line[len(quote):] if line.startswith(quote) else line.lstrip()}".rstrip())
        else:
            out.append(line)
    return out


def _link(match: re.Match) -> str:
    name = match.group(2)
    return f"`{name.rsplit('.', 1)[-1] if match.group(1) else name}`"


def to_markdown(raw: str) -> tuple[str, str | None]:
    """(the docstring as CommonMark without its usage example, the example as runnable code or None).

    Section headers become bold lines over their dedented blocks (an indented block would be code in Markdown),
    argument entries a list, Tips block quotes and doc-builder links code spans. The example is the first code block
    of an ``Example(s):`` section, else the first code block holding doctest prompts.
    """
    lines = raw.split("\n")
    example, out, i = None, [], 0
    while i < len(lines):
        section = _SECTION.match(lines[i])
        if not section:
            out.append(lines[i])
            i += 1
            continue
        end = _block_end(lines, i + 1, len(section.group(1)))
        block, name = _dedent(lines[i + 1:end]), section.group(2).lower()
        if name in _EXAMPLE_SECTIONS and example is None:
            example, first, last = _example_code(block)
            if example is not None:
                block = block[:first] + block[last:]
        elif name in _ARGUMENT_SECTIONS:
            block = _argument_list(block)
        if any(line.strip() for line in block):
            out += ["", f"**{section.group(2)}**", "", *block, ""]
        i = end
    if example is None:
        example, first, last = _example_code(out)
        if example is not None and any(">>>" in line for line in out[first:last]):
            out = out[:first] + out[last:]
        else:
            example = None
    markdown = "\n".join(_tips_as_notes(out))
    return _HF_LINK.sub(_link, markdown).strip(), example
