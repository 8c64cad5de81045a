"""The encoder exported to ONNX with the real torch.onnx and ONNX Runtime: what it writes, how close each variant's
vectors are to torch's, that its tokenizer is the Transformers one, and that an export round-trips to the same answers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from mlops.core.errors import MlopsError
from mlops.data.corpus import extract_symbols
from mlops.lifecycle import onnx_export
from mlops.lifecycle.onnx_export import export_onnx
from mlops.search.encoder import Encoder, base_model_path
from mlops.search.onnx_encoder import VARIANT_FILES, OnnxEncoder
from mlops.search.retriever import Retriever, corpus_embeddings
from mlops.search.settings import QUERY_MAX_TOKENS, shipped_settings

QUESTIONS = [
    "How do I stop generation when a certain word appears?",
    "save my fine-tuned model and its tokenizer to a folder",
    "which object keeps the keys and values that grow at every step " * 8,  # longer than QUERY_MAX_TOKENS: truncated
    "lr",
]


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder(base_model_path(), device="cpu")


@pytest.fixture(scope="module")
def exported(encoder: Encoder, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("onnx") / "onnx"
    return folder, export_onnx(encoder, folder, echo=lambda _: None)


def test_the_export_writes_each_variant_with_its_size_and_digest_and_nothing_else(exported):
    folder, files = exported
    assert set(files) == set(VARIANT_FILES)
    for variant, entry in files.items():
        graph = folder / VARIANT_FILES[variant]
        assert entry == {"file": graph.name, "bytes": graph.stat().st_size, "sha256": hashlib.sha256(graph.read_bytes()).hexdigest()}
    assert files["onnx-int8"]["bytes"] < files["onnx-fp32"]["bytes"] / 3  # weights in one byte instead of four
    assert not (folder / onnx_export.RAW_GRAPH).exists() and (folder / "tokenizer.json").is_file()
    assert [p.name for p in folder.parent.iterdir()] == ["onnx"]  # no staging folder left behind


def test_the_onnx_tokenizer_gives_what_the_transformers_tokenizer_gives(encoder: Encoder, exported):
    onnx = OnnxEncoder(exported[0], "onnx-fp32")
    theirs = {name: tensor.numpy() for name, tensor in encoder.tokenize(QUESTIONS, QUERY_MAX_TOKENS).items()}
    ours = onnx._tokenize(QUESTIONS, QUERY_MAX_TOKENS)
    assert set(ours) == set(theirs) and theirs["input_ids"].shape[1] == QUERY_MAX_TOKENS
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name])


def test_fp32_matches_torch_and_int8_stays_close(encoder: Encoder, exported):
    reference = encoder.encode_queries(QUESTIONS)
    fp32 = OnnxEncoder(exported[0], "onnx-fp32").encode_queries(QUESTIONS)
    int8 = OnnxEncoder(exported[0], "onnx-int8", threads=3).encode_queries(QUESTIONS)  # three runs at once
    # Fused kernels reorder float sums: fp32 agrees to rounding. INT8 weights move each vector a little (cosine 0.98
    # here for "lr", 0.99 at worst on the natural and development questions); whether that changes answers is
    # evaluate's accuracy rule.
    assert np.sum(fp32 * reference, axis=1).min() > 0.99999
    assert 0.97 < np.sum(int8 * reference, axis=1).min() < 0.99999
    np.testing.assert_allclose(np.linalg.norm(int8, axis=1), 1.0, rtol=1e-5)
    # One question per run: a question's INT8 vector does not depend on the batch it comes in (Triton batches
    # differently), nor on the runs beside it, and comes back in its question's row.
    alone = np.concatenate([OnnxEncoder(exported[0], "onnx-int8", threads=1).encode_queries([q]) for q in QUESTIONS])
    np.testing.assert_array_equal(alone, int8)


def test_an_onnx_export_answers_as_the_retriever_it_was_saved_from(encoder: Encoder, exported, mini_package: Path, tmp_path: Path):
    symbols = extract_symbols(mini_package, include=(), exclude=())[0]
    embeddings = corpus_embeddings(encoder, symbols, tmp_path / "cache")
    settings = shipped_settings(0.3).model_copy(update={"encoder_variant": "onnx-int8"})
    retriever = Retriever.from_settings(settings, OnnxEncoder(exported[0], "onnx-int8"), symbols, embeddings)
    retriever.save(tmp_path / "export", {})
    saved = sorted(p.name for p in (tmp_path / "export" / "encoder").iterdir())
    assert VARIANT_FILES["onnx-int8"] in saved and "model.safetensors" not in saved and VARIANT_FILES["onnx-fp32"] not in saved
    loaded = Retriever.load(tmp_path / "export", threads=1)
    assert loaded.settings.model_dump() == retriever.settings.model_dump() and loaded.encoder.variant == "onnx-int8"
    assert loaded.search(QUESTIONS, 5) == retriever.search(QUESTIONS, 5)
    with pytest.raises(MlopsError, match="settings ask for the onnx-int8 encoder, not torch-fp32"):
        Retriever.from_settings(settings, encoder, symbols, embeddings)


def test_a_failed_export_leaves_the_previous_one_and_no_partial_files(encoder: Encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import onnxruntime.quantization

    target = tmp_path / "onnx"
    target.mkdir()
    (target / "previous").write_text("kept")

    def broken(*args, **kwargs):
        raise RuntimeError("quantiser failed")

    monkeypatch.setattr(onnxruntime.quantization, "quantize_dynamic", broken)
    with pytest.raises(RuntimeError, match="quantiser failed"):
        export_onnx(encoder, target, echo=lambda _: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["onnx"] and (target / "previous").read_text() == "kept"


def test_a_broken_quantisation_is_refused_and_an_accurate_variant_serves(encoder: Encoder, exported, mini_package: Path,
                                                                         tmp_path: Path):
    """The INT8 graph with its weight scales scrambled (a quantiser bug): the accuracy rule, measured as evaluate
    measures it, refuses the variant however fast it is, and an accurate one serves."""
    import shutil

    import onnx
    from onnx import numpy_helper

    from mlops.data import dataset
    from mlops.evaluation.evaluate import measure_variants, split_questions
    from mlops.evaluation.gate import choose_variant, variant_faults

    broken = tmp_path / "broken"
    shutil.copytree(exported[0], broken)
    graph = onnx.load(str(broken / VARIANT_FILES["onnx-int8"]))
    scales = [t for t in graph.graph.initializer if t.name.endswith("_scale") and t.data_type == onnx.TensorProto.FLOAT]
    assert scales, "the INT8 graph has no weight scales to scramble"
    rng = np.random.default_rng(0)
    for tensor in scales:
        value = numpy_helper.to_array(tensor)
        tensor.CopyFrom(numpy_helper.from_array((value * np.exp(rng.uniform(-2, 2, value.shape))).astype(value.dtype), tensor.name))
    onnx.save(graph, str(broken / VARIANT_FILES["onnx-int8"]))
    symbols = extract_symbols(mini_package, include=(), exclude=())[0]
    folder = tmp_path / "data" / dataset.build_dataset(symbols, tmp_path / "data", source="mini")[0]
    by_name = {s.symbol: s for s in symbols}
    sets = {"validation": split_questions(folder, "train", by_name), "natural_dev": split_questions(folder, "test", by_name)}
    encoders = {"torch-fp32": encoder, "onnx-fp32": OnnxEncoder(broken, "onnx-fp32"), "onnx-int8": OnnxEncoder(broken, "onnx-int8")}
    measured = measure_variants(encoders, shipped_settings(0.0), symbols, corpus_embeddings(encoder, symbols, tmp_path / "cache"),
                                sets, sets["validation"].questions)
    faults = variant_faults(measured)
    assert faults["onnx-fp32"] is None and measured["onnx-fp32"]["sets"]["validation"]["delta_mrr"] == pytest.approx(0, abs=1e-6)
    assert faults["onnx-int8"] is not None and faults["onnx-int8"].startswith("onnx-int8 loses ")
    assert choose_variant(measured, faults) != "onnx-int8"


def test_int8_runs_its_questions_at_once_on_the_cores_it_is_given(exported):
    """Two runs must be in flight together (a barrier both wait at) when the encoder has two cores; with one, runs
    follow each other in the calling thread."""
    import threading

    encoder = OnnxEncoder(exported[0], "onnx-int8", threads=2)
    real_run, both_in_flight = encoder.single_threaded.run, threading.Barrier(2, timeout=10)

    def run_in_pairs(*args):
        both_in_flight.wait()
        return real_run(*args)

    encoder.single_threaded.run = run_in_pairs
    assert encoder.encode_queries(QUESTIONS).shape == (len(QUESTIONS), 384)
    single = OnnxEncoder(exported[0], "onnx-int8", threads=1)
    callers = []
    real_single = single.session.run
    single.session.run = lambda *args: callers.append(threading.get_ident()) or real_single(*args)
    single.encode_queries(QUESTIONS)
    assert callers == [threading.get_ident()] * len(QUESTIONS)
    # A lone question is one run, on the session that spreads it over every thread it is given.
    assert encoder.session is not encoder.single_threaded and encoder.session.get_session_options().intra_op_num_threads == 2


def test_the_cores_an_encoder_uses_stay_within_the_cgroup_quota(tmp_path: Path):
    from mlops.search.onnx_encoder import available_cores

    # cpu.max as the kernel writes it (Documentation/admin-guide/cgroup-v2.rst, "cpu.max"): "$MAX $PERIOD", "max" for none.
    cpu_max = tmp_path / "cpu.max"
    unlimited = available_cores(tmp_path / "absent")
    cpu_max.write_text("max 100000\n")
    assert available_cores(cpu_max) == unlimited
    cpu_max.write_text("150000 100000\n")  # a pod limited to 1.5 CPUs
    assert available_cores(cpu_max) == min(unlimited, 2)
    cpu_max.write_text("50000 100000\n")
    assert available_cores(cpu_max) == 1
