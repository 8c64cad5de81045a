import json
from pathlib import Path

import pytest

from mlops.core.errors import MlopsError
from mlops.data import dataset
from mlops.data.corpus import Symbol, extract_symbols
from mlops.data.questions import base_verb, questions_for
from mlops.data.text import passage


def _symbols(mini_package: Path) -> list[Symbol]:
    return extract_symbols(mini_package, include=(), exclude=())[0]


def test_rules_make_questions_with_provenance(mini_package: Path):
    symbol = next(s for s in _symbols(mini_package) if s.name == "resume")
    pairs = list(questions_for(symbol))
    assert [p.rule for p in pairs] == ["what", "how"]
    assert pairs[0].question == "What does Trainer.resume do?"
    assert pairs[1].question == "How do I resume an interrupted training run from the last checkpoint folder?"
    assert pairs[1].source == "Resumes an interrupted training run from the last checkpoint folder"


def test_argument_rule_reads_hf_style_args():
    symbol = Symbol(symbol="p.m.save", kind="function", signature="(path)", path="p/m.py", line=1, category="other",
                    docstring="Save it.\n\nArgs:\n    save_directory (`str` or `os.PathLike`):\n        Directory to which to save.\n"
                              "    safe (`bool`, *optional*): Whether to use the safe format.\n")
    questions = [p.question for p in questions_for(symbol) if p.rule == "argument"]
    assert questions == ["How can I set the directory to which to save?", "How do I choose whether to use the safe format?"]


@pytest.mark.parametrize(("word", "verb"), [("Returns", "return"), ("Applies", "apply"), ("Processes", "process"),
                                            ("Load", "load"), ("This", None), ("Class", None), ("Base", None)])
def test_base_verb(word, verb):
    assert base_verb(word) == verb


def test_dataset_is_deterministic_versioned_and_leak_free(mini_package: Path, tmp_path: Path):
    symbols = _symbols(mini_package)
    first, manifest = dataset.build_dataset(symbols, tmp_path / "a", source="mini")
    second, _ = dataset.build_dataset(list(reversed(symbols)), tmp_path / "b", source="mini")
    assert first == second  # content hash, independent of input order
    folder = dataset.resolve(tmp_path / "a", None)
    assert folder.name == first
    splits = {s: dataset.load_split(folder, s) for s in dataset.SPLITS}
    owners = {s: {p.symbol for p in pairs} for s, pairs in splits.items()}
    assert not owners["train"] & owners["test"] and not owners["train"] & owners["validation"] and not owners["validation"] & owners["test"]
    assert sum(len(p) for p in splits.values()) == manifest["pairs"]["kept"] > len(symbols)
    assert all(len({(p.question, p.symbol) for p in pairs}) == len(pairs) for pairs in splits.values())
    # Changing one docstring changes the version.
    changed = [s.model_copy(update={"docstring": s.docstring + " More."}) if s.name == "accuracy" else s for s in symbols]
    assert dataset.build_dataset(changed, tmp_path / "a", source="mini")[0] != first


def test_a_version_is_restored_elsewhere_from_its_files_only_under_its_own_hash(mini_package: Path, tmp_path: Path):
    """As a Ray worker on another node gets the dataset (mlops.evaluation.tune)."""
    first, _ = dataset.build_dataset(_symbols(mini_package), tmp_path / "here", source="mini")
    files = dataset.files_of(tmp_path / "here" / first)
    restored = dataset.restore(tmp_path / "there", files)
    assert restored == tmp_path / "there" / first and dataset.files_of(restored) == files
    assert dataset.restore(tmp_path / "there", {**files, "train.jsonl": b""}) == restored  # present: left as it is
    assert [p.name for p in (tmp_path / "there").iterdir()] == [first]  # no staging folder left behind
    with pytest.raises(MlopsError, match=f"dataset {first}: its files hash to "):
        dataset.restore(tmp_path / "elsewhere", {**files, "train.jsonl": b""})
    assert not (tmp_path / "elsewhere" / first).exists()


def test_ambiguous_questions_are_dropped():
    def sym(name):
        return Symbol(symbol=f"p.{name}", kind="function", signature="()", docstring="Returns the thing you need.",
                      path="p.py", line=1, category="other")
    pairs, stats = dataset.make_pairs([sym("a"), sym("b")])
    assert not any(p.rule == "how" for p in pairs)  # "How do I return the thing you need?" points at two symbols
    assert stats["ambiguous"] == 2


def test_schema_violation_names_file_line_and_field(mini_package: Path, tmp_path: Path):
    dataset_hash, _ = dataset.build_dataset(_symbols(mini_package), tmp_path, source="mini")
    test_file = tmp_path / dataset_hash / "test.jsonl"
    lines = test_file.read_text().splitlines()
    broken = json.loads(lines[0])
    del broken["symbol"]
    lines[0] = json.dumps(broken)
    test_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(MlopsError, match=r"test\.jsonl:1: field 'symbol': Field required"):
        dataset.load_split(tmp_path / dataset_hash, "test")


def test_unknown_dataset_and_no_dataset(tmp_path: Path):
    with pytest.raises(MlopsError, match="run `mlops data` first"):
        dataset.resolve(tmp_path, None)
    with pytest.raises(MlopsError, match="unknown dataset 'abc'"):
        dataset.resolve(tmp_path, "abc")


def test_labelled_questions_join_their_symbols_split_with_provenance(mini_package: Path, tmp_path: Path):
    import datetime

    from mlops.data.labelled import LabelledQuestion

    symbols = _symbols(mini_package)
    split_of_symbol = {s.symbol: dataset.split_of(passage(s)) for s in symbols}
    test_symbol = next(s.symbol for s in symbols if split_of_symbol[s.symbol] == "test")
    train_symbol = next(s.symbol for s in symbols if split_of_symbol[s.symbol] == "train")
    written = datetime.date(2026, 12, 2)
    entries = [LabelledQuestion(question=q, symbols=s, author="me", written=written, rule="labelled") for q, s in [
        ("a question a user would type about the held-out one", (test_symbol,)),
        ("a question a user would type about a trained one", (train_symbol, "minilib.gone")),  # not in this corpus: dropped
    ]]
    plain_hash, plain = dataset.build_dataset(symbols, tmp_path / "a", source="mini")
    with_hash, manifest = dataset.build_dataset(symbols, tmp_path / "b", source="mini", labelled_set=entries)
    assert with_hash != plain_hash and manifest["pairs"]["labelled"] == 2 and manifest["rules"]["labelled"] == 2
    labelled = {split: [p for p in dataset.load_split(tmp_path / "b" / with_hash, split) if p.rule == "labelled"] for split in dataset.SPLITS}
    assert [(p.symbol, p.source) for p in labelled["test"]] == [(test_symbol, "written by me on 2026-12-02")]
    assert [p.symbol for p in labelled["train"]] == [train_symbol] and labelled["validation"] == []
    # Document expansion: only the train-split symbol indexes its question; the held-out one never finds its own.
    expanded = {s.symbol: s.labelled_questions for s in dataset.load_corpus(tmp_path / "b" / with_hash) if s.labelled_questions}
    assert expanded == {train_symbol: ("a question a user would type about a trained one",)}
    assert dataset.build_dataset(symbols, tmp_path / "c", source="mini", labelled_set=())[0] == plain_hash  # none: as before
