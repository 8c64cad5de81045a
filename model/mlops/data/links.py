"""Where a reader opens a symbol: its source line on GitHub and its entry in the Transformers documentation.

Both are computed from what the data step reads, never written per symbol:

- the source: ``https://github.com/huggingface/transformers/blob/<tag>/src/<path>#L<line>``, the tag being the
  release of the package read (``__version__`` in its ``__init__.py``; ``main`` for a development version);
- the documentation: doc-builder (huggingface/doc-builder, ``build_doc.resolve_autodoc`` and ``autodoc.autodoc``)
  renders every ``[[autodoc]] NAME`` directive of ``docs/source/en/<page>.md`` on
  ``https://huggingface.co/docs/transformers/<tag>/en/<page>``. The object's anchor is its shortest import path
  (``autodoc.get_shortest_path``: ``transformers.PreTrainedModel`` for an exported name, else the first module on its
  defining path that has it); a method's anchor is ``<class anchor>.<method>``. The methods documented are those
  listed under the directive (``- save_pretrained``), and, with no list or with ``- all`` in it, every public
  documented method the class defines itself (``autodoc.find_documented_methods``, which leaves out properties and
  inherited methods). The docs source at the same tag is read when given (``mlops data --docs``); without it, or for
  a symbol no directive names, there is no documentation link.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mlops.core.errors import MlopsError
from mlops.data.corpus import Symbol

REPOSITORY = "https://github.com/huggingface/transformers"
DOCS_SITE = "https://huggingface.co/docs/transformers"
PACKAGE = "transformers"
_VERSION = re.compile(r"""^__version__\s*=\s*["']([^"']+)["']""", re.MULTILINE)
_RELEASE = re.compile(r"^\d+\.\d+\.\d+(rc\d+)?$")
# doc-builder's own patterns (build_doc._re_autodoc, build_doc._re_list_item)
_AUTODOC = re.compile(r"^\s*\[\[autodoc\]\]\s+(\S+)\s*$")
_MEMBER = re.compile(r"^\s*-\s+(\S+)\s*$")


def package_version(root: Path) -> str | None:
    """``__version__`` as the package's ``__init__.py`` assigns it (read, not imported), or None."""
    init = Path(root) / "__init__.py"
    found = _VERSION.search(init.read_text(encoding="utf-8")) if init.is_file() else None
    return found.group(1) if found else None


def release_ref(version: str) -> str:
    """The git tag of a release (``v5.23.0``); a development version has none, so its links follow ``main``."""
    return f"v{version}" if _RELEASE.match(version) else "main"


def source_url(symbol: Symbol, ref: str) -> str:
    return f"{REPOSITORY}/blob/{ref}/src/{symbol.path}#L{symbol.line}"


@dataclass(frozen=True)
class DocEntry:
    """One ``[[autodoc]]`` directive: the page it is on, the name it documents and the members listed under it."""

    page: str
    name: str
    members: tuple[str, ...] | None  # None: no list under it, so doc-builder documents the class's own methods


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _members(lines: list[str], directive: int) -> tuple[str, ...] | None:
    """The ``- member`` list under the directive on line ``directive``, as doc-builder reads it: after blank lines,
    indented deeper than the directive, one indent for the whole list; None when there is no list."""
    following = [(line, _indent(line)) for line in lines[directive + 1:]]
    items = [(line, indent) for line, indent in following if line.strip()]
    if not items or items[0][1] <= _indent(lines[directive]) or not _MEMBER.match(items[0][0]):
        return None
    members = []
    for line, indent in items:
        item = _MEMBER.match(line)
        if indent != items[0][1] or not item:
            break
        members.append(item.group(1))
    return tuple(members)


def autodoc_entries(docs: Path) -> list[DocEntry]:
    """Every ``[[autodoc]]`` directive of a docs source folder (``docs/source/en`` of a transformers checkout)."""
    docs = Path(docs)
    pages = sorted(docs.rglob("*.md"))
    if not pages:
        raise MlopsError(f"{docs} holds no .md pages; pass the docs/source/en folder of a transformers checkout at the installed tag")
    entries = []
    for path in pages:
        lines = path.read_text(encoding="utf-8").splitlines()
        page = path.relative_to(docs).with_suffix("").as_posix()
        for number, line in enumerate(lines):
            directive = _AUTODOC.match(line)
            if directive:
                name = directive.group(1).removeprefix(f"{PACKAGE}.")
                entries.append(DocEntry(page, name, _members(lines, number)))
    return entries


def _owner(entry: DocEntry, by_name: dict[str, list[Symbol]]) -> Symbol | None:
    """The class or function a directive documents: a bare name is the exported symbol of that name, a dotted one
    (``generation.GenerationMixin``) the symbol of that name under that module."""
    *module, name = entry.name.split(".")
    candidates = by_name.get(name, [])
    if module:
        prefix = ".".join([PACKAGE, *module])
        candidates = [s for s in candidates if s.symbol.startswith(prefix + ".") or s.symbol == f"{prefix}.{name}"]
    else:
        candidates = [s for s in candidates if s.exported]
    return candidates[0] if len(candidates) == 1 else None


def _anchor(owner: Symbol, entry: DocEntry) -> str:
    """``get_shortest_path``: the first module on the owner's defining path that has its name. Known statically: the
    package (exported names), the module the directive names (doc-builder found it there) and the defining module."""
    if owner.exported:
        return f"{PACKAGE}.{owner.short_name}"
    defining = owner.symbol.removesuffix(f".{owner.short_name}")
    named = ".".join([PACKAGE, *entry.name.split(".")[:-1]])
    module = named if defining == named or defining.startswith(named + ".") else defining
    return f"{module}.{owner.short_name}"


def _documented_methods(entry: DocEntry, own: list[Symbol]) -> list[Symbol]:
    """The methods a directive documents (``autodoc.autodoc``): those listed, plus the class's own public methods,
    properties aside, when there is no list or the list holds ``all``."""
    listed = set(entry.members or ())
    every = entry.members is None or "all" in listed
    return [m for m in own if m.name in listed or (every and not m.is_property and not m.name.startswith("_"))]


def docs_urls(symbols: list[Symbol], entries: list[DocEntry], ref: str) -> dict[str, str]:
    """Symbol name -> its documentation URL, for the symbols the directives document (and their methods)."""
    by_name: dict[str, list[Symbol]] = {}
    methods: dict[str, list[Symbol]] = {}
    for symbol in symbols:
        if symbol.kind == "method":
            methods.setdefault(symbol.symbol.rsplit(".", 1)[0], []).append(symbol)
        else:
            by_name.setdefault(symbol.short_name.rsplit(".", 1)[-1], []).append(symbol)
    urls: dict[str, str] = {}
    for entry in entries:
        owner = _owner(entry, by_name)
        if owner is None:
            continue
        anchor = _anchor(owner, entry)
        page = f"{DOCS_SITE}/{ref}/en/{entry.page}"
        urls.setdefault(owner.symbol, f"{page}#{anchor}")
        for method in _documented_methods(entry, methods.get(owner.symbol, [])):
            urls.setdefault(method.symbol, f"{page}#{anchor}.{method.name}")
    return urls


def with_links(symbols: list[Symbol], root: Path, docs: Path | None) -> tuple[list[Symbol], dict]:
    """The symbols with their links when ``root`` is the transformers package (else as they are), and what was used."""
    version = package_version(root) if Path(root).name == PACKAGE else None
    if version is None:
        return symbols, {"package": Path(root).name, "version": None, "docs": None}
    ref = release_ref(version)
    urls = docs_urls(symbols, autodoc_entries(docs), ref) if docs else {}
    linked = [s.model_copy(update={"source_url": source_url(s, ref), "docs_url": urls.get(s.symbol)}) for s in symbols]
    return linked, {"package": PACKAGE, "version": version, "ref": ref, "docs": str(docs) if docs else None, "documented": len(urls)}
