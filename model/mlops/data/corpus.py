"""Read the public, documented API of a Python package from its source with ``ast``.

Nothing is imported: each file is parsed, so the corpus can be built from any checkout of
Transformers, and a file that does not parse is reported and skipped rather than executed.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from mlops.core.errors import MlopsError

# Parts of the package that are not API a user calls: test helpers, and the ~400 per-model
# folders whose classes repeat each other (models/auto, the entry points to all of them, stays).
DEFAULT_EXCLUDE = (
    "transformers/testing_utils.py",
    "transformers/models/*",
    "*/tests/*",
)
DEFAULT_INCLUDE = ("transformers/models/auto/*",)


class Symbol(BaseModel):
    """One documented API symbol: a class, function or method."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str  # dotted qualified name, e.g. transformers.modeling_utils.PreTrainedModel.save_pretrained
    kind: str  # "class" | "function" | "method"
    signature: str  # e.g. "(self, save_directory, is_main_process=True)"
    docstring: str
    path: str  # relative to the source root's parent, e.g. transformers/modeling_utils.py
    line: int
    category: str  # slice used in evaluation, e.g. "generation", "training", "modeling"
    exported: bool = False  # its top-level name is exported by a package __init__ (the public API surface)
    code_words: str = ""  # identifiers its source uses (corpus.code_words): BM25 reads them, the encoder does not
    # The team's labelled questions about it when it is in the train split (document expansion, filled by the
    # dataset step): BM25 reads them, and the encoder indexes each as one more chunk.
    labelled_questions: tuple[str, ...] = ()
    # A method read as an attribute (@property, @cached_property): documentation builders skip it unless named.
    is_property: bool = False
    # Where a reader opens it (mlops.data.links; None where the package or its docs are not known).
    source_url: str | None = None
    docs_url: str | None = None

    @property
    def name(self) -> str:
        return self.symbol.rsplit(".", 1)[-1]

    @property
    def short_name(self) -> str:
        """Name with its enclosing classes, without the module: PreTrainedModel.save_pretrained."""
        module = self.path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        return self.symbol.removeprefix(module + ".")


def installed_package_root(package: str = "transformers") -> Path:
    """The source folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MlopsError(f"package {package!r} is not installed; run `make setup` or pass --source PATH")
    return Path(next(iter(spec.submodule_search_locations)))


def category_of(path: str) -> str:
    """Coarse topic of a file, used to slice metrics (transformers/generation/utils.py -> generation)."""
    parts = path.removesuffix(".py").split("/")[1:]
    if len(parts) > 1:  # a subpackage names its own topic
        return "auto" if parts[0] == "models" else parts[0]
    stem = parts[0] if parts else "package"
    for prefix, topic in (
        ("trainer", "training"),
        ("training_args", "training"),
        ("optimization", "training"),
        ("modeling", "modeling"),
        ("configuration", "configuration"),
        ("tokenization", "preprocessing"),
        ("processing", "preprocessing"),
        ("feature_extraction", "preprocessing"),
        ("image_processing", "preprocessing"),
        ("video_processing", "preprocessing"),
    ):
        if stem.startswith(prefix):
            return topic
    return "other"


def _selected(rel: str, include: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    if any(part.startswith("_") and part != "__init__.py" for part in rel.split("/")):
        return False  # private modules and packages
    if any(fnmatch.fnmatch(rel, pattern) for pattern in include):
        return True
    return not any(fnmatch.fnmatch(rel, pattern) for pattern in exclude)


def exported_names(tree: ast.Module) -> set[str]:
    """Names an ``__init__.py`` exports: imported names and the identifier strings of lazy import tables."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
            names.add(node.value)
        elif isinstance(node, ast.ImportFrom):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> str:
    if isinstance(node, ast.ClassDef):
        init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        return _signature(init) if init else "()"
    text = ast.unparse(node.args)
    return f"({text})"


def code_words(node: ast.AST) -> str:
    """The distinct names, attributes and argument names used in ``node``'s source, sorted.

    Questions often share words with a symbol's code ("max time", "tie weights") that its docstring
    lacks; docs/experiments.md has what they add. A class includes its methods' code.
    """
    words = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            words.add(child.id)
        elif isinstance(child, ast.Attribute):
            words.add(child.attr)
        elif isinstance(child, ast.arg):
            words.add(child.arg)
        elif isinstance(child, ast.keyword) and child.arg:
            words.add(child.arg)
    return " ".join(sorted(words))


_PROPERTY_DECORATORS = {"property", "cached_property", "setter", "getter", "deleter"}


def _is_property(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> bool:
    """``@property``, ``@functools.cached_property`` or a property's ``@x.setter``."""
    for decorator in node.decorator_list:
        name = decorator.attr if isinstance(decorator, ast.Attribute) else getattr(decorator, "id", "")
        if name in _PROPERTY_DECORATORS:
            return True
    return False


def _is_test_helper(name: str) -> bool:
    return name.startswith("test_") or name.startswith("Test")


def _walk(body: list[ast.stmt], module: str, rel: str, prefix: str, in_class: bool) -> Iterator[Symbol]:
    for node in body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if node.name.startswith("_") or _is_test_helper(node.name):
            continue
        qualified = f"{prefix}{node.name}"
        docstring = ast.get_docstring(node)
        if docstring and docstring.strip():
            kind = "class" if isinstance(node, ast.ClassDef) else ("method" if in_class else "function")
            yield Symbol(
                symbol=f"{module}.{qualified}",
                kind=kind,
                signature=_signature(node),
                docstring=docstring.strip(),
                path=rel,
                line=node.lineno,
                category=category_of(rel),
                code_words=code_words(node),
                is_property=in_class and _is_property(node),
            )
        if isinstance(node, ast.ClassDef):  # methods and nested classes; functions inside functions are not API
            yield from _walk(node.body, module, rel, f"{qualified}.", True)


# Transformers documents its Auto classes at import time: `AutoModelForCausalLM = auto_class_update(
# AutoModelForCausalLM, head_doc="causal language modeling")` sets the docstring. Read statically, the
# class looks undocumented, so the documentation that call would attach is written out here.
_AUTO_CLASS_DOC = (
    "Generic model class{head} that is instantiated as the right model class of the library for a checkpoint "
    "when created with {name}.from_pretrained(checkpoint) or {name}.from_config(config); it cannot be instantiated "
    "directly with __init__()."
)


def _auto_classes(tree: ast.Module, module: str, rel: str) -> Iterator[Symbol]:
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    for node in tree.body:
        call = node.value if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "auto_class_update"):
            continue
        name = node.targets[0].id if isinstance(node.targets[0], ast.Name) else ""
        if name not in classes or name.startswith("_") or ast.get_docstring(classes[name]):
            continue
        head = next((k.value.value for k in call.keywords if k.arg == "head_doc" and isinstance(k.value, ast.Constant)), "")
        yield Symbol(
            symbol=f"{module}.{name}",
            kind="class",
            signature="()",
            docstring=_AUTO_CLASS_DOC.format(head=f" with a {head} head" if head else "", name=name),
            path=rel,
            line=classes[name].lineno,
            category=category_of(rel),
            code_words=code_words(classes[name]),
        )


def extract_symbols(
    root: Path,
    include: tuple[str, ...] = DEFAULT_INCLUDE,
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE,
    progress=None,
) -> tuple[list[Symbol], list[str]]:
    """All public documented symbols under ``root`` (a package folder), and the files that failed to parse.

    ``progress(done, total)`` is called after each file (for progress bars).
    """
    root = Path(root)
    if not root.is_dir():
        raise MlopsError(f"source tree {root} does not exist or is not a folder; pass the package folder, e.g. .../site-packages/transformers")
    files = sorted(p for p in root.rglob("*.py") if _selected(p.relative_to(root.parent).as_posix(), include, exclude))
    if not files:
        raise MlopsError(f"no Python files found under {root}; is it the package folder (it must contain __init__.py and modules)?")
    symbols: list[Symbol] = []
    failures: list[str] = []
    exported: set[str] = set()
    for done, path in enumerate(files, start=1):
        rel = path.relative_to(root.parent).as_posix()
        if progress:
            progress(done, len(files))
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        except (SyntaxError, UnicodeDecodeError, OSError) as exc:
            failures.append(f"{rel}: {exc.__class__.__name__}: {exc}")
            continue
        module = rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        symbols.extend(_walk(tree.body, module, rel, "", False))
        symbols.extend(_auto_classes(tree, module, rel))
        if path.name == "__init__.py":
            exported |= exported_names(tree)
    symbols = [s.model_copy(update={"exported": s.short_name.split(".")[0] in exported}) for s in symbols]
    if not symbols:
        raise MlopsError(f"no public documented symbols found under {root} ({len(failures)} files failed to parse)")
    return symbols, failures
