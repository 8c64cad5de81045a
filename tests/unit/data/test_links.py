"""The links of a symbol: its source line on GitHub at the package's tag, and its entry in the Transformers docs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.core.errors import MlopsError
from mlops.data.corpus import Symbol
from mlops.data.links import autodoc_entries, docs_urls, package_version, release_ref, with_links

# Directives as docs/source/en/main_classes/model.md of huggingface/transformers writes them (stored snapshot, commit
# 00d23af3c382121188f35131cd4302c56292d4f1), and main_classes/text_generation.md's GenerationMixin entry. The
# expected pages and anchors follow huggingface/doc-builder's build_doc.resolve_autodoc and autodoc.autodoc,
# get_shortest_path and find_documented_methods (src/doc_builder, commits 10eaa36 and 2e0f6e7).
MODEL_MD = """# Models

## PreTrainedModel

[[autodoc]] PreTrainedModel
    - push_to_hub
    - all

## ModuleUtilsMixin

[[autodoc]] modeling_utils.ModuleUtilsMixin

## Pushing to the Hub

[[autodoc]] utils.PushToHubMixin
"""
TEXT_GENERATION_MD = """## GenerationMixin

[[autodoc]] GenerationMixin

    - generate
    - compute_transition_scores

  [[autodoc]] generation.utils.GenerateDecoderOnlyOutput
"""


def _symbol(symbol: str, path: str, kind: str = "class", exported: bool = False, line: int = 10) -> Symbol:
    return Symbol(symbol=symbol, kind=kind, signature="()", docstring="Does it.", path=path, line=line, category="modeling",
                  exported=exported, is_property=symbol.endswith(".device"))


SYMBOLS = [
    _symbol("transformers.modeling_utils.PreTrainedModel", "transformers/modeling_utils.py", exported=True, line=1100),
    _symbol("transformers.modeling_utils.PreTrainedModel.save_pretrained", "transformers/modeling_utils.py", "method", line=3000),
    _symbol("transformers.modeling_utils.PreTrainedModel._private", "transformers/modeling_utils.py", "method"),
    _symbol("transformers.modeling_utils.ModuleUtilsMixin", "transformers/modeling_utils.py"),
    _symbol("transformers.modeling_utils.ModuleUtilsMixin.num_parameters", "transformers/modeling_utils.py", "method"),
    _symbol("transformers.modeling_utils.ModuleUtilsMixin.device", "transformers/modeling_utils.py", "method"),
    _symbol("transformers.utils.hub.PushToHubMixin", "transformers/utils/hub.py", exported=True),
    _symbol("transformers.generation.utils.GenerationMixin", "transformers/generation/utils.py", exported=True),
    _symbol("transformers.generation.utils.GenerationMixin.generate", "transformers/generation/utils.py", "method"),
    _symbol("transformers.generation.utils.GenerationMixin.heal_tokens", "transformers/generation/utils.py", "method"),
    _symbol("transformers.generation.utils.GenerateDecoderOnlyOutput", "transformers/generation/utils.py"),
    _symbol("transformers.trainer_utils.set_seed", "transformers/trainer_utils.py", "function", exported=True, line=180),
]
SITE = "https://huggingface.co/docs/transformers/v5.23.0/en"


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    (tmp_path / "main_classes").mkdir()
    (tmp_path / "main_classes" / "model.md").write_text(MODEL_MD)
    (tmp_path / "main_classes" / "text_generation.md").write_text(TEXT_GENERATION_MD)
    return tmp_path


def test_versions_and_tags(tmp_path: Path):
    (tmp_path / "__init__.py").write_text('import os\n\n__version__ = "5.23.0"\n')
    assert package_version(tmp_path) == "5.23.0" and package_version(tmp_path / "missing") is None
    assert release_ref("5.23.0") == "v5.23.0" and release_ref("5.0.0rc1") == "v5.0.0rc1" and release_ref("5.24.0.dev0") == "main"


def test_directives_are_read_as_doc_builder_reads_them(docs: Path):
    entries = {e.name: (e.page, e.members) for e in autodoc_entries(docs)}
    assert entries == {
        "PreTrainedModel": ("main_classes/model", ("push_to_hub", "all")),
        "modeling_utils.ModuleUtilsMixin": ("main_classes/model", None),
        "utils.PushToHubMixin": ("main_classes/model", None),
        "GenerationMixin": ("main_classes/text_generation", ("generate", "compute_transition_scores")),
        "generation.utils.GenerateDecoderOnlyOutput": ("main_classes/text_generation", None),
    }


def test_directives_become_pages_and_anchors(docs: Path):
    urls = docs_urls(SYMBOLS, autodoc_entries(docs), "v5.23.0")
    assert urls == {
        "transformers.modeling_utils.PreTrainedModel": f"{SITE}/main_classes/model#transformers.PreTrainedModel",
        # `- all`: every public method, under the class's anchor
        "transformers.modeling_utils.PreTrainedModel.save_pretrained": f"{SITE}/main_classes/model#transformers.PreTrainedModel.save_pretrained",
        # a module-qualified name that is not exported keeps its module in the anchor; with no member list, the
        # class's own methods are documented, its properties (device) are not
        "transformers.modeling_utils.ModuleUtilsMixin": f"{SITE}/main_classes/model#transformers.modeling_utils.ModuleUtilsMixin",
        "transformers.modeling_utils.ModuleUtilsMixin.num_parameters":
            f"{SITE}/main_classes/model#transformers.modeling_utils.ModuleUtilsMixin.num_parameters",
        # an indented directive still counts; its anchor is the path it is named by, a module on its defining path
        "transformers.generation.utils.GenerateDecoderOnlyOutput":
            f"{SITE}/main_classes/text_generation#transformers.generation.utils.GenerateDecoderOnlyOutput",
        "transformers.utils.hub.PushToHubMixin": f"{SITE}/main_classes/model#transformers.PushToHubMixin",
        "transformers.generation.utils.GenerationMixin": f"{SITE}/main_classes/text_generation#transformers.GenerationMixin",
        # the member list may follow a blank line
        "transformers.generation.utils.GenerationMixin.generate":
            f"{SITE}/main_classes/text_generation#transformers.GenerationMixin.generate",
    }  # heal_tokens is not listed and set_seed has no directive: no documentation link, rather than a guessed one


def test_links_are_added_for_the_transformers_package_only(docs: Path, tmp_path: Path):
    root = tmp_path / "src" / "transformers"
    root.mkdir(parents=True)
    (root / "__init__.py").write_text('__version__ = "5.23.0"\n')
    linked, package = with_links(SYMBOLS, root, docs)
    seed = next(s for s in linked if s.name == "set_seed")
    assert seed.source_url == "https://github.com/huggingface/transformers/blob/v5.23.0/src/transformers/trainer_utils.py#L180"
    assert seed.docs_url is None and linked[0].docs_url == f"{SITE}/main_classes/model#transformers.PreTrainedModel"
    assert package == {"package": "transformers", "version": "5.23.0", "ref": "v5.23.0", "docs": str(docs), "documented": 8}
    without_docs, _ = with_links(SYMBOLS, root, None)
    assert all(s.docs_url is None and s.source_url for s in without_docs)
    other = tmp_path / "minilib"
    other.mkdir()
    assert with_links(SYMBOLS, other, docs) == (SYMBOLS, {"package": "minilib", "version": None, "docs": None})
    with pytest.raises(MlopsError, match="holds no .md pages"):
        with_links(SYMBOLS, root, tmp_path / "src")
