from pathlib import Path

import pytest

from mlops.core.errors import MlopsError
from mlops.data.corpus import category_of, extract_symbols
from mlops.data.text import identifier_words, lexical_passage, passage
from support.package import dedent


def test_extracts_public_documented_symbols_with_provenance(mini_package: Path):
    symbols, failures = extract_symbols(mini_package, include=(), exclude=())
    by_name = {s.symbol: s for s in symbols}
    assert failures == []
    assert len(symbols) == 41
    resume = by_name["minilib.training.Trainer.resume"]
    assert resume.kind == "method"
    assert resume.signature == "(self, *args, **kwargs)"
    assert resume.path == "minilib/training.py"
    source_line = (mini_package / "training.py").read_text().splitlines()[resume.line - 1]
    assert source_line.strip().startswith("def resume(")
    assert resume.short_name == "Trainer.resume"
    assert by_name["minilib.generation.utils.generate"].category == "generation"
    assert by_name["minilib.training.Trainer"].kind == "class"
    exported = {s.symbol for s in symbols if s.exported}
    assert {"minilib.training.Trainer", "minilib.training.Trainer.resume", "minilib.generation.utils.TextStreamer"} <= exported
    assert "minilib.metrics.accuracy" not in exported


def test_code_words_are_the_identifiers_a_symbol_source_uses(tmp_path: Path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "stopping.py").write_text(dedent('''
        class MaxTime(Criteria):
            """Stops generation after a while."""

            def __init__(self, max_time: float):
                self.initial_timestamp = time.time()

            def is_done(self, scores, **kwargs):
                """True once the budget is spent."""
                return time.time() - self.initial_timestamp > self.max_time
        '''))
    by_name = {s.name: s for s in extract_symbols(package, include=(), exclude=())[0]}
    # A class carries its methods' words; each word once, sorted, so the corpus hash is stable.
    assert by_name["MaxTime"].code_words == "Criteria float initial_timestamp kwargs max_time scores self time"
    assert by_name["is_done"].code_words == "initial_timestamp kwargs max_time scores self time"
    assert by_name["MaxTime"].code_words in lexical_passage(by_name["MaxTime"])
    assert by_name["MaxTime"].code_words not in passage(by_name["MaxTime"])  # the encoder never reads them


def test_leaves_out_private_undocumented_and_test_helpers(mini_package: Path):
    names = {s.name for s in extract_symbols(mini_package, include=(), exclude=())[0]}
    assert not names & {"hidden", "_helper", "undocumented", "test_something"}


def test_include_and_exclude_patterns(mini_package: Path):
    symbols, _ = extract_symbols(mini_package, include=("minilib/generation/*",), exclude=("minilib/*",))
    assert {s.path for s in symbols} == {"minilib/generation/utils.py"}


def test_unparsable_file_is_reported_and_skipped(mini_package: Path):
    (mini_package / "broken.py").write_text("def oops(:\n")
    symbols, failures = extract_symbols(mini_package, include=(), exclude=())
    assert len(symbols) == 41
    assert len(failures) == 1 and failures[0].startswith("minilib/broken.py: SyntaxError")


def test_missing_or_empty_source_tree_is_a_clear_error(tmp_path: Path):
    with pytest.raises(MlopsError, match="does not exist"):
        extract_symbols(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MlopsError, match="no Python files"):
        extract_symbols(tmp_path / "empty")
    (tmp_path / "nodocs").mkdir()
    (tmp_path / "nodocs" / "a.py").write_text("def f():\n    pass\n")
    with pytest.raises(MlopsError, match="no public documented symbols"):
        extract_symbols(tmp_path / "nodocs")


def test_categories_and_passage_text():
    assert category_of("transformers/trainer_utils.py") == "training"
    assert category_of("transformers/generation/utils.py") == "generation"
    assert category_of("transformers/models/auto/modeling_auto.py") == "auto"
    assert category_of("transformers/tokenization_utils_base.py") == "preprocessing"
    assert identifier_words("PreTrainedModel.gradient_checkpointing_enable") == "Pre Trained Model gradient checkpointing enable"


def test_passage_cleans_doc_links(mini_package: Path):
    symbols, _ = extract_symbols(mini_package, include=(), exclude=())
    symbol = symbols[0].model_copy(update={"docstring": "See [`~Trainer.resume`] and `x`.\n\n    Args:\n  a (int): b"})
    text = passage(symbol)
    assert "See resume and x." in text and "`" not in text


def test_auto_classes_documented_at_import_time_are_included(tmp_path: Path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "modeling_auto.py").write_text(
        "class AutoModelForCausalLM(_BaseAutoModelClass):\n    _model_mapping = {}\n\n"
        'AutoModelForCausalLM = auto_class_update(AutoModelForCausalLM, head_doc="causal language modeling")\n'
        'def helper():\n    """Documented."""\n'
    )
    symbols = {s.symbol: s for s in extract_symbols(package, include=(), exclude=())[0]}
    auto = symbols["pkg.modeling_auto.AutoModelForCausalLM"]
    assert auto.kind == "class" and auto.line == 1
    assert "with a causal language modeling head" in auto.docstring and "AutoModelForCausalLM.from_pretrained" in auto.docstring
