"""Answer a question with the current ``champion``, in process (no server needed)."""

from __future__ import annotations

import os

from mlops.core.inputs import DEFAULT_TOP_K, check_question, check_top_k
from mlops.core.settings import Settings
from mlops.lifecycle import registry
from mlops.lifecycle.export import export_version
from mlops.search.retriever import Retriever


def champion_retriever(settings: Settings) -> tuple[Retriever, str]:
    """The champion's exported folder: the live Triton repository's, else a fresh export into the cache."""
    client, champion = registry.champion(settings)
    folder = settings.served_folder(champion.version)
    if not (folder / "retrieval.json").is_file():
        folder = settings.exports_dir / settings.model_name / str(champion.version)
        if not (folder / "retrieval.json").is_file():
            export_version(settings, client, champion, settings.exports_dir, echo=lambda *_: None)
    return Retriever.load(folder), str(champion.version)


def ask(settings: Settings, question: str, top_k: int = DEFAULT_TOP_K) -> tuple[dict, str]:
    """The champion's reply (the best ``top_k`` answers, or its abstention: mlops.core.wire.reply) and its version."""
    question, top_k = check_question(question), check_top_k(top_k)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    retriever, version = champion_retriever(settings)
    return retriever.reply([question], top_k)[0], version
