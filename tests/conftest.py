"""Shared fixtures: a small synthetic package to read, and an isolated `.mlops/` per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.package import MINI_NATURAL, QA_MODEL, SET_SEED, SET_SEED_DOCS_URL, SET_SEED_DOCSTRING, SET_SEED_SOURCE_URL, write_package

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

@pytest.fixture
def mini_package(tmp_path: Path) -> Path:
    return write_package(tmp_path / "src")


@pytest.fixture
def mlops_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated .mlops/ (and SQLite MLflow store) for one test."""
    home = tmp_path / "mlops-home"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home


@pytest.fixture
def natural_file(tmp_path: Path) -> Path:
    import yaml

    path = tmp_path / "natural.yaml"
    path.write_text(yaml.safe_dump({"questions": [{"question": q, "expected": e, "topic": "mini"} for q, e in MINI_NATURAL]}))
    return path


# -- serving: a real Triton with a small real model -------------------------------------------------


@pytest.fixture(scope="session")
def qa_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Triton model repository holding version 1 of the real QA model over the mini package (untuned encoder), set_seed
    documented as transformers documents it (SET_SEED_DOCSTRING, with links). It abstains below a best cosine of 0.2:
    the mini package's questions score 0.5 and more, OFF_TOPIC_QUESTION 0.1."""
    from mlops.data.corpus import extract_symbols
    from mlops.lifecycle.export import write_model_version
    from mlops.search.encoder import Encoder, base_model_path
    from mlops.search.retriever import Retriever, corpus_embeddings, encode_sentences

    root = tmp_path_factory.mktemp("qa-model")
    symbols = [s.model_copy(update={"docstring": SET_SEED_DOCSTRING, "source_url": SET_SEED_SOURCE_URL, "docs_url": SET_SEED_DOCS_URL})
               if s.symbol == SET_SEED else s for s in extract_symbols(write_package(root / "src"), include=(), exclude=())[0]]
    encoder = Encoder(base_model_path(), device="cpu")
    retriever = Retriever(encoder, symbols, corpus_embeddings(encoder, symbols, None), bm25_weight=0.3, abstain_below=0.2,
                          sentences=encode_sentences(encoder, symbols, None))
    write_model_version(root / "repository", QA_MODEL, "1", retriever)
    return root / "repository"


@pytest.fixture(scope="session")
def qa_triton(qa_repository: Path, tmp_path_factory: pytest.TempPathFactory):
    """A running tritonserver (127.0.0.1, free ports) with the QA model loaded; stopped after the session."""
    from mlops.triton.server import TritonServer

    with TritonServer(qa_repository, tmp_path_factory.mktemp("qa-triton")) as server:
        server.load_model(QA_MODEL)
        yield server
