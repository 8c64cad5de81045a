import json
from pathlib import Path

import numpy as np
import pytest

from mlops.core.errors import MlopsError
from mlops.data.corpus import extract_symbols
from mlops.data.text import BOILERPLATE_MAX_SYMBOLS, corpus_chunks
from mlops.search import lexical
from mlops.search.encoder import Encoder, base_model_path
from mlops.search.lexical import QueryExpansion, load_query_expansion
from mlops.search.retriever import Retriever, corpus_embeddings, encode_sentences
from mlops.search.settings import PUBLIC_API_PRIOR, shipped_settings


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder(base_model_path(), device="cpu")


@pytest.fixture
def symbols(mini_package: Path):
    return extract_symbols(mini_package, include=(), exclude=())[0]


def test_search_answers_best_first_with_provenance(encoder: Encoder, symbols, tmp_path: Path):
    retriever = Retriever(encoder, symbols, corpus_embeddings(encoder, symbols, tmp_path), bm25_weight=0.3)
    answers = retriever.search(["How do I make my runs reproducible with a fixed random seed?"], top_k=3)[0]
    assert [a["symbol"] for a in answers][0] == "minilib.training.set_seed"
    assert len(answers) == 3
    assert answers[0]["score"] >= answers[1]["score"] >= answers[2]["score"]
    assert answers[0]["path"] == "minilib/training.py" and answers[0]["line"] > 0 and "random seed" in answers[0]["text"]


def test_embeddings_are_cached_by_model_and_corpus(encoder: Encoder, symbols, tmp_path: Path):
    first = corpus_embeddings(encoder, symbols, tmp_path)
    cached = list((tmp_path / "embeddings").glob("*.npy"))
    assert len(cached) == 1
    np.testing.assert_array_equal(corpus_embeddings(encoder, symbols, tmp_path), first)
    corpus_embeddings(encoder, symbols[:-1], tmp_path)
    assert len(list((tmp_path / "embeddings").glob("*.npy"))) == 2


def test_save_and_load_give_identical_answers(encoder: Encoder, symbols, tmp_path: Path):
    expansion = QueryExpansion(weight=0.5, entries={"heartbeat": "communication processes"})
    retriever = Retriever(encoder, symbols, corpus_embeddings(encoder, symbols, None), bm25_weight=0.4, query_expansion=expansion)
    retriever.save(tmp_path / "export", manifest={"model_version": "1"})
    loaded = Retriever.load(tmp_path / "export")
    questions = ["print tokens while generating", "too many log messages", "heartbeat"]
    assert loaded.search(questions, 5) == retriever.search(questions, 5)
    assert loaded.query_expansion == expansion
    assert json.loads((tmp_path / "export" / "retrieval.json").read_text())["model_version"] == "1"


def test_reply_abstains_below_the_threshold_and_the_threshold_travels_with_the_export(encoder: Encoder, symbols, tmp_path: Path):
    questions = ["How do I make my runs reproducible with a fixed random seed?", "what's a good recipe for banana bread"]
    plain = Retriever(encoder, symbols, corpus_embeddings(encoder, symbols, None), bm25_weight=0.3)
    in_domain, off_topic = plain.confidences(questions)
    assert in_domain > 0.5 > 0.2 > off_topic
    assert [r["abstained"] for r in plain.reply(questions, 3)] == [False, False]  # no threshold: always answers
    threshold = float((in_domain + off_topic) / 2)
    cautious = Retriever.from_settings(plain.settings.model_copy(update={"abstain_below": threshold}), encoder, symbols, plain.embeddings)
    answered, refused = cautious.reply(questions, 3)
    without_highlight = [{k: v for k, v in a.items() if k not in ("highlight", "summary")} for a in answered["answers"]]
    assert without_highlight == plain.search(questions[:1], 3)[0] and answered["confidence"] == pytest.approx(float(in_domain))
    assert refused["abstained"] and refused["answers"] == [] and f"needs {threshold:.2f}" in refused["reason"]
    cautious.save(tmp_path / "export", manifest={})
    assert Retriever.load(tmp_path / "export").reply(questions, 3) == cautious.reply(questions, 3)
    with pytest.raises(MlopsError, match="cannot abstain"):
        Retriever(None, symbols, None, 1.0, abstain_below=0.3)


def test_query_expansion_is_part_of_an_export(encoder: Encoder, symbols, tmp_path: Path):
    expansion = QueryExpansion(weight=0.5, entries={"heartbeat": "communication processes"})
    assert Retriever(None, symbols, None, 1.0, public_api_prior=0.0, query_expansion=None).scores(["heartbeat"]).max() == 0.0
    assert Retriever(None, symbols, None, 1.0, query_expansion=expansion).search(["heartbeat"], 1)[0][0]["symbol"] == (
        "minilib.distributed.init_process_group")
    Retriever(encoder, symbols, corpus_embeddings(encoder, symbols, None), 0.4, query_expansion=expansion).save(tmp_path, {})
    settings_file = tmp_path / "retrieval.json"
    settings = json.loads(settings_file.read_text())
    settings_file.write_text(json.dumps({key: value for key, value in settings.items() if key != "query_expansion"}))
    with pytest.raises(MlopsError, match="query_expansion is invalid.*re-export"):
        Retriever.load(tmp_path)
    settings_file.write_text(json.dumps({**settings, "query_expansion": {"weight": 5, "entries": {"a": "b"}}}))
    with pytest.raises(MlopsError, match="query_expansion.weight is invalid.*re-export"):
        Retriever.load(tmp_path)
    # An entry that adds nothing is refused in the thesaurus file (test_lexical) but not in an export, which
    # loads as it was evaluated.
    idle = {"weight": 0.5, "entries": {"heartbeat": "communication processes", "answer questions": "question_answering"}}
    settings_file.write_text(json.dumps({**settings, "query_expansion": idle}))
    assert Retriever.load(tmp_path).query_expansion.idle_entries() == ["answer questions"]


def test_a_candidate_is_measured_with_the_shipped_prior_and_thesaurus(symbols, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    shipped = shipped_settings(1.0)
    assert shipped.query_expansion == load_query_expansion() and shipped.public_api_prior == PUBLIC_API_PRIOR
    assert Retriever.from_settings(shipped, None, symbols, None).settings == shipped
    broken = tmp_path / "broken.yaml"
    broken.write_text("weight: 3\nentries: {settings: config}\n")
    monkeypatch.setattr(lexical, "QUERY_EXPANSION_FILE", broken)
    with pytest.raises(MlopsError, match="broken.yaml is invalid at weight"):
        shipped_settings(1.0)


def test_settings_digest_names_their_content():
    shipped = shipped_settings(0.3)
    assert shipped.digest() == shipped_settings(0.3).digest()
    assert len({shipped.digest(), shipped_settings(0.4).digest(), shipped.model_copy(update={"query_expansion": None}).digest()}) == 3


def test_bm25_only_and_bad_arguments(symbols):
    bm25 = Retriever(None, symbols, None, bm25_weight=1.0, public_api_prior=0.0)
    assert bm25.search(["export a model to ONNX"], 1)[0][0]["symbol"] == "minilib.export.export_onnx"
    with pytest.raises(MlopsError, match="question is empty"):
        bm25.search(["  "], 1)
    with pytest.raises(MlopsError, match="top_k must be between 1 and 50"):
        bm25.search(["x"], 0)
    with pytest.raises(MlopsError, match="outside"):
        Retriever(None, symbols, None, bm25_weight=1.5)
    with pytest.raises(MlopsError, match="must be pure BM25"):
        Retriever(None, symbols, None, bm25_weight=0.5)


def test_bm25_reads_the_words_of_a_symbol_code(symbols):
    question = ["watchdog heartbeat?"]
    assert Retriever(None, symbols, None, 1.0, public_api_prior=0.0).scores(question).max() == 0.0  # in no docstring
    target = next(i for i, s in enumerate(symbols) if s.symbol == "minilib.distributed.init_process_group")
    symbols[target] = symbols[target].model_copy(update={"code_words": "heartbeat_interval store watchdog"})
    assert Retriever(None, symbols, None, 1.0).search(question, 1)[0][0]["symbol"] == "minilib.distributed.init_process_group"


def test_a_symbol_indexes_its_labelled_questions_for_bm25_and_the_encoder(encoder: Encoder, symbols, tmp_path: Path):
    question = ["keep the two machines talking while one of them is busy?"]
    target = next(i for i, s in enumerate(symbols) if s.symbol == "minilib.distributed.init_process_group")
    plain = Retriever(encoder, symbols, corpus_embeddings(encoder, symbols, tmp_path), 0.0, public_api_prior=0.0)
    before = [Retriever(None, symbols, None, 1.0, public_api_prior=0.0).search(question, 1)[0][0]["symbol"],
              plain.search(question, 1)[0][0]["symbol"]]
    asked = ("how do I keep two machines talking while one is busy with a long step",)
    symbols[target] = symbols[target].model_copy(update={"labelled_questions": asked})
    assert corpus_chunks([symbols[target]])[0][-1] == asked[0]  # one more encoder chunk per question
    assert symbols[target].symbol not in before
    assert Retriever(None, symbols, None, 1.0, public_api_prior=0.0).search(question, 1)[0][0]["symbol"] == symbols[target].symbol
    embeddings = corpus_embeddings(encoder, symbols, tmp_path)
    dense = Retriever(encoder, symbols, embeddings, bm25_weight=0.0, public_api_prior=0.0)
    assert dense.search(question, 1)[0][0]["symbol"] == symbols[target].symbol
    # A labelled-question chunk counts the discount less than a documentation chunk of the same cosine.
    discounted = Retriever(encoder, symbols, embeddings, bm25_weight=0.0, public_api_prior=0.0, labelled_chunk_discount=0.25)
    cosines = encoder.encode_queries(question)[0] @ embeddings.T
    first = discounted.chunk_starts[target]
    last = first + len(corpus_chunks(symbols)[target])
    expected = max(cosines[first:last - 1].max(), cosines[last - 1] - 0.25)
    assert discounted.components(question)[0][0, target] == pytest.approx(expected, abs=1e-6) != cosines[first:last].max()
    export = tmp_path / "export"
    discounted.save(export, {})
    loaded = Retriever.load(export)  # the export carries the questions and the discount to Triton
    assert loaded.symbols[target].labelled_questions == asked and loaded.labelled_chunk_discount == 0.25


def test_loading_something_that_is_not_an_export(tmp_path: Path):
    with pytest.raises(MlopsError, match="not an exported model"):
        Retriever.load(tmp_path)


def test_each_documented_argument_is_a_chunk_and_a_symbol_scores_its_best_chunk(encoder: Encoder, symbols, tmp_path: Path):
    filler = " ".join(["This paragraph describes unrelated configuration details."] * 30)
    doc = (f"Runs a job. {filler}\n\nArgs:\n    report_bucket (`str`, *optional*):\n"
           "        Where the final report is uploaded when the job ends,\n        an S3 bucket name.\n    retries (`int`): 3.\n")
    long_doc = symbols[0].model_copy(update={"docstring": doc})
    chunks = corpus_chunks([long_doc])[0]
    assert len(chunks) == 2  # the passage, and one chunk for the one argument described in 3 words or more
    assert chunks[1] == f"{long_doc.short_name}: report bucket: Where the final report is uploaded when the job ends, an S3 bucket name."
    corpus = [long_doc, *symbols[1:]]
    retriever = Retriever(encoder, corpus, corpus_embeddings(encoder, corpus, tmp_path), bm25_weight=0.0, public_api_prior=0.0)
    assert retriever.search(["upload the report to an S3 bucket"], 1)[0][0]["symbol"] == long_doc.symbol
    with pytest.raises(MlopsError, match="passage chunks"):
        Retriever(encoder, corpus, corpus_embeddings(encoder, symbols, tmp_path), bm25_weight=0.0)


def test_an_argument_description_many_symbols_share_is_not_indexed(symbols):
    shared = "hidden_states (`tuple`):\n        Hidden states of the model at the output of each layer."
    own = "top_k (`int`):\n        How many candidates to keep at every step."

    def documented(symbol, *arguments):
        return symbol.model_copy(update={"docstring": "Does a thing.\n\nArgs:\n    " + "\n    ".join(arguments)})

    def argument_chunks(corpus):
        return [len(chunks) - 1 for chunks in corpus_chunks(corpus)]

    sharing = BOILERPLATE_MAX_SYMBOLS
    assert argument_chunks([documented(s, shared) for s in symbols[:sharing]]) == [1] * sharing
    corpus = [documented(s, shared) for s in symbols[: sharing + 1]] + [documented(symbols[sharing + 1], shared, own)]
    assert argument_chunks(corpus) == [0] * (sharing + 1) + [1]
    assert corpus_chunks(corpus)[-1][1].endswith("How many candidates to keep at every step.")


def test_reply_highlights_the_sentence_the_deployed_encoder_scores_best(encoder: Encoder, tmp_path: Path):
    from mlops.data.corpus import Symbol

    docstring = ("Sets the seed of the random number generators of python, numpy and torch. "
                 "Printing progress bars is turned off while downloading files.")
    symbols = [Symbol(symbol="pkg.set_seed", kind="function", signature="(seed)", docstring=docstring, path="pkg/utils.py", line=3,
                      category="package", source_url="https://example.org/utils.py#L3")]
    retriever = Retriever(encoder, symbols, corpus_embeddings(encoder, symbols, None), bm25_weight=0.3,
                          sentences=encode_sentences(encoder, symbols, None))
    for question, sentence in [("how do I make runs reproducible with a fixed seed", 0), ("hide the download progress bar", 1)]:
        answer = retriever.reply([question], 1)[0]["answers"][0]
        highlighted = answer["text"][answer["highlight"]["start"]:answer["highlight"]["end"]]
        assert highlighted == ["Sets the seed of the random number generators of python, numpy and torch.",
                               "Printing progress bars is turned off while downloading files."][sentence]
    assert answer["docstring"] == docstring and answer["source_url"] == "https://example.org/utils.py#L3" and answer["docs_url"] is None
    summary = answer["text"][answer["summary"]["start"]:answer["summary"]["end"]]  # the first sentence, whatever the question
    assert summary == "Sets the seed of the random number generators of python, numpy and torch."
    retriever.save(tmp_path / "export", manifest={})
    assert (tmp_path / "export" / "sentences.npz").is_file()
    assert Retriever.load(tmp_path / "export").reply(["hide the download progress bar"], 1) == retriever.reply(["hide the download progress bar"], 1)
