from pathlib import Path

import pytest

from mlops.core.errors import MlopsError
from mlops.search.lexical import BM25Index, QueryExpansion, lexical_tokens, load_query_expansion


def test_lexical_tokens_split_identifiers_and_stem():
    assert lexical_tokens("How do I use gradient_checkpointing_enable on PreTrainedModel?") == [
        "use", "gradient", "checkpoint", "enable", "pre", "train", "model"]


def test_expansion_adds_the_words_of_each_entry_whose_key_the_question_holds():
    expansion = QueryExpansion(weight=0.5, entries={"settings": "configuration", "wall clock": "max_time", "gpu": "device cuda"})
    assert expansion.terms(lexical_tokens("Where are my settings stored?")) == ["configuration"]
    assert expansion.terms(lexical_tokens("a clock on the wall")) == ["max", "time"]  # every key word, in any order
    assert expansion.terms(lexical_tokens("a clock")) == []  # half a key adds nothing
    assert expansion.terms(lexical_tokens("which device is my gpu")) == ["cuda"]  # words the question has are not added again


def test_expanded_words_reach_a_passage_in_other_words_at_their_weight():
    passages = ["Save the configuration to a JSON file.", "Print the settings menu.", "Load model weights."]
    plain = BM25Index(passages)
    expanded = BM25Index(passages, QueryExpansion(weight=0.5, entries={"settings": "configuration"}))
    question = "How do I store my settings?"
    assert plain.scores(question)[0] == 0.0
    assert expanded.scores(question)[0] == pytest.approx(0.5 * plain.scores("configuration")[0])
    assert expanded.scores(question)[1] == pytest.approx(plain.scores(question)[1])  # the question's own words score as before
    assert expanded.scores(question)[2] == 0.0


def test_the_shipped_thesaurus_loads_and_maps_user_words():
    shipped = load_query_expansion()
    assert 0 < shipped.weight < 1
    assert "configur" in " ".join(shipped.terms(lexical_tokens("change my settings")))


@pytest.mark.parametrize(("content", "message"), [
    ("weight: 0.5\nentries: {the: config}\n", r"invalid at entries: .*'the'.*stopwords only"),
    ("weight: 0.5\nentries: {word: words}\n", r"invalid at entries: .*'word'.*adds no word"),
    ("weight: 2\nentries: {settings: config}\n", "invalid at weight"),
    ("weight: 0.5\nentries: {}\n", "invalid at entries"),
    ("entries: [oops\n", "unreadable"),
])
def test_a_bad_thesaurus_file_is_named_with_what_is_wrong(tmp_path: Path, content: str, message: str):
    path = tmp_path / "expansion.yaml"
    path.write_text(content)
    with pytest.raises(MlopsError, match=message):
        load_query_expansion(path)


def test_a_missing_thesaurus_file_is_named(tmp_path: Path):
    with pytest.raises(MlopsError, match="missing.yaml is unreadable"):
        load_query_expansion(tmp_path / "missing.yaml")
