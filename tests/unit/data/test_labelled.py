"""The labelled training set: its file format, the rules a question keeps, and its coverage."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from mlops.core.errors import MlopsError
from mlops.data.corpus import Symbol
from mlops.data.eval_sets import NATURAL_DEV, NATURAL_FRESH, NATURAL_QUESTIONS, load_natural_questions
from mlops.data.labelled import INDEX_RULE, LABELLED_DIR, LabelledQuestion, NearIdentical, coverage, labelled_pairs, load_labelled, problems

WHEN = datetime.date(2026, 12, 2)


def symbol(name: str, kind: str = "method", docstring: str = "", exported: bool = False) -> Symbol:
    return Symbol(symbol=name, kind=kind, signature="()", docstring=docstring, path="p.py", line=1, category="other",
                  exported=exported)


CORPUS = {s.symbol: s for s in [
    symbol("pkg.modeling.PreTrainedModel", "class", "Base class for all models.", exported=True),
    symbol("pkg.modeling.PreTrainedModel.from_pretrained", docstring="Instantiate a pretrained model from a directory of saved weights."),
    symbol("pkg.modeling.PreTrainedModel.save_pretrained", docstring="Save a model and its configuration file to a directory."),
    symbol("pkg.modeling.PreTrainedModel._init_weights", docstring="Initialize the weights."),
    symbol("pkg.generation.GenerationMixin", "class", "A class containing all functions for auto-regressive text generation.", exported=True),
    symbol("pkg.generation.GenerationMixin.generate", docstring="Generates sequences of token ids for models with a language modeling head."),
    symbol("pkg.utils.set_seed", "function", "Helper function for reproducible behavior to set the seed.", exported=True),
]}


def entry(question: str, *symbols: str) -> LabelledQuestion:
    return LabelledQuestion(question=question, symbols=symbols, author="test", written=WHEN, rule="labelled")


def test_a_question_in_the_users_words_passes():
    good = [entry("My fine-tuned network is in a folder on disk; how do I get it back into memory?",
                  "pkg.modeling.PreTrainedModel.from_pretrained"),
            entry("I want every run to give the same numbers: where do I fix the randomness?", "pkg.utils.set_seed"),
            entry("How do I generate a continuation for my prompt?", "pkg.generation.GenerationMixin.generate")]  # a plain word
    assert problems(good, CORPUS) == []


@pytest.mark.parametrize(("question", "name", "why"), [
    ("Can I call from_pretrained on a local folder?", "pkg.modeling.PreTrainedModel.from_pretrained", "names the symbol (from_pretrained)"),
    ("how do I load from pretrained weights on my disk", "pkg.modeling.PreTrainedModel.from_pretrained", "names the symbol (from_pretrained)"),
    ("what does the generation mixin offer for sampling", "pkg.generation.GenerationMixin", "names the symbol (GenerationMixin)"),
    ("where is the PreTrainedModel method that reloads saved weights?", "pkg.modeling.PreTrainedModel.from_pretrained",
     "names the symbol (PreTrainedModel)"),  # a method's class names it too
    ("I need to save a model and its configuration somewhere", "pkg.modeling.PreTrainedModel.save_pretrained",
     "copies 'save a model and' from the docstring"),
    ("which helper sets the dice for runs?", "pkg.utils.no_such_function", "pkg.utils.no_such_function is not in the corpus"),
])
def test_a_question_that_breaks_a_rule_is_refused(question: str, name: str, why: str):
    found = problems([entry(question, name)], CORPUS)
    assert len(found) == 1 and why in found[0], found


def test_phrases_of_function_words_only_are_not_copies():
    # "how do I get" and "to the" appear in many docstrings; two content words make a copy.
    assert problems([entry("How do I get the same output every time for my seed runs?", "pkg.utils.set_seed")], CORPUS) == []


def test_the_same_question_twice_and_evaluation_questions_are_refused():
    twice = [entry("How do I reload my saved network from a folder?", "pkg.modeling.PreTrainedModel.from_pretrained")] * 2
    assert problems(twice, CORPUS)[0].endswith("the same question is written twice")
    held_out = ["How do I reload my saved network from a folder on disk?"]
    assert twice[0].question in NearIdentical(held_out) and "How do I train a tokenizer?" not in NearIdentical(held_out)
    assert problems(twice[:1], CORPUS, held_out)[0].endswith("evaluation questions are never trained on")


def test_coverage_counts_exported_symbols_and_documented_methods_of_exported_classes():
    entries = [entry(f"question number {i} about reloading weights", "pkg.modeling.PreTrainedModel.from_pretrained") for i in range(3)]
    entries.append(entry("what keeps my experiments repeatable", "pkg.utils.set_seed"))
    # Targets: the two exported classes, set_seed, and the three documented methods of exported classes; _init_weights is
    # documented too (the rule is about documentation, not underscores).
    internal = symbol("pkg.parallel.split_layers", "function", "Split the layers across ranks.")  # not a target
    entries.append(entry("which ranks get which layers when I shard the network", internal.symbol))
    assert coverage(entries, [*CORPUS.values(), internal]) == {"targets": 7, "none": 5, "one_or_two": 1, "three_or_more": 1,
                                                               "questions": 5, "corpus": {"symbols": 8, "none": 5}}


def test_pairs_keep_their_provenance():
    pairs = labelled_pairs([entry("How do I reload my saved network?", "pkg.modeling.PreTrainedModel.from_pretrained", "pkg.gone")], CORPUS)
    assert [(p.symbol, p.rule, p.source) for p in pairs] == [
        ("pkg.modeling.PreTrainedModel.from_pretrained", "labelled", "written by test on 2026-12-02")]


def test_files_load_in_order_and_a_bad_entry_is_one_line(tmp_path: Path):
    (tmp_path / "b.yaml").write_text("questions:\n  - {question: 'How do I reload my saved network?', symbols: [x.y], "
                                     "author: me, written: 2026-12-01, rule: labelled}\n")
    (tmp_path / "a.yaml").write_text("questions:\n  - {question: 'What keeps my experiments repeatable?', symbols: [x.z], "
                                     "author: me, written: 2026-12-01, rule: labelled}\n")
    assert [e.symbols for e in load_labelled(tmp_path)] == [("x.z",), ("x.y",)]
    (tmp_path / "c.yaml").write_text("questions:\n  - {question: 'What keeps my runs repeatable?', symbols: [], "
                                     "author: me, written: 2026-12-01, rule: labelled}\n")
    with pytest.raises(MlopsError, match=r"c.yaml, entry 1: symbols: Tuple should have at least 1 item"):
        load_labelled(tmp_path)
    (tmp_path / "c.yaml").write_text("questions: [unclosed\n")
    with pytest.raises(MlopsError, match="c.yaml is unreadable"):
        load_labelled(tmp_path)


def test_a_file_that_says_train_false_only_indexes_its_symbols(tmp_path: Path):
    (tmp_path / "internals.yaml").write_text("train: false\nquestions:\n  - {question: 'How do I reload my saved network?', "
                                             "symbols: [pkg.modeling.PreTrainedModel.from_pretrained], author: me, "
                                             "written: 2026-12-01, rule: labelled}\n")
    (entry_read,) = load_labelled(tmp_path)
    assert entry_read.train is False
    assert [p.rule for p in labelled_pairs([entry_read], CORPUS)] == [INDEX_RULE]  # no training config names this rule
    (tmp_path / "internals.yaml").write_text("train: sometimes\nquestions: []\n")
    with pytest.raises(MlopsError, match="train must be true or false, not 'sometimes'"):
        load_labelled(tmp_path)


def test_the_shipped_set_has_no_evaluation_question():
    """The leakage check on the repository's own files: no labelled question is (nearly) an evaluation question."""
    held_out = [q.question for path in (NATURAL_QUESTIONS, NATURAL_DEV, NATURAL_FRESH) for q in load_natural_questions(path)]
    leaked = [e.question for e in load_labelled(LABELLED_DIR) if e.question in NearIdentical(held_out)]
    assert leaked == []
