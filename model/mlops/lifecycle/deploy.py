"""Deploy a registered version: export it, serve it from the real Triton, check it, then crown it.

The new version is exported into a staging repository and loaded by a fresh ``tritonserver``
(explicit model control, 127.0.0.1, free ports). A smoke test and a contract test (Triton's
top-k symbols and scores equal the in-process model's) must pass; only then is the version moved
into the live repository and the ``champion`` alias moved to it. On any failure the staging
folder is removed, and the live repository and ``champion`` are left as they were.

Locally this machine is where the model is served, so a deploy that passes crowns the version. In the
cluster the deploy step only tests it (``move_champion=False``: it stays ``candidate``); staging serves it after
ArgoCD syncs the promotion, and only when the staging API passed its smoke test does :func:`crown` move
``champion``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion

from mlops.core.errors import MlopsError
from mlops.core.settings import Settings
from mlops.core.smoke import SMOKE_QUESTION, SMOKE_TOP_K, check_smoke_answers
from mlops.lifecycle import registry, tracking
from mlops.lifecycle.export import export_version
from mlops.search.retriever import Retriever
from mlops.triton.client import TritonQAClient
from mlops.triton.server import TritonServer

# Fixed contract questions: different topics, lengths and phrasings.
CONTRACT_QUESTIONS = (
    "How do I save a fine-tuned model to a folder and load it again later?",
    "My GPU runs out of memory while fine-tuning; how do I recompute activations to save memory?",
    "stop generation when a special word appears",
    "How can I make my training runs reproducible?",
    "pad a batch of sequences to the same length",
    "Which class loads the right tokenizer for any checkpoint name?",
    "quantize a model to 4 bits to save memory",
    "print fewer log messages",
    "learning rate warmup then linear decay",
    "How do I stream generated tokens to the console as they are produced?",
    "add new tokens to the vocabulary and resize the embeddings",
    "evaluate every 500 steps and keep only the best checkpoint",
)
# Questions a model with a threshold abstains on: the contract covers the abstention too.
OFF_TOPIC_CONTRACT_QUESTIONS = (
    "Which Transformer is stronger: Optimus Prime or Megatron?",
    "what's a good recipe for banana bread",
    "asdf qwer zxcv",
)
CONTRACT_TOP_K = 10
SCORE_TOLERANCE = 1e-4  # float32 batch-shape noise; far below the gap between distinct answers


def smoke_test(qa: TritonQAClient, name: str) -> None:
    check_smoke_answers(qa.ask([SMOKE_QUESTION], top_k=SMOKE_TOP_K, model_name=name)[0]["answers"], "Triton")


def same_answers(served: list[dict], local: list[dict], tolerance: float = SCORE_TOLERANCE) -> str | None:
    """None if the rankings agree; else what differs. Near-ties (within tolerance) may swap places."""
    if len(served) != len(local):
        return f"{len(served)} answers from Triton, {len(local)} in-process"
    for rank, (a, b) in enumerate(zip(served, local, strict=True), start=1):
        if abs(a["score"] - b["score"]) > tolerance:
            return f"rank {rank}: score {a['score']} from Triton vs {b['score']} in-process ({a['symbol']} / {b['symbol']})"
        if a["symbol"] != b["symbol"] and not any(abs(a["score"] - c["score"]) <= tolerance for c in local if c["symbol"] == a["symbol"]):
            return f"rank {rank}: {a['symbol']} from Triton vs {b['symbol']} in-process"
    return None


def same_reply(served: dict, local: dict, tolerance: float = SCORE_TOLERANCE) -> str | None:
    """None if Triton and the in-process model say the same: the same abstention (a confidence within tolerance of the
    threshold may go either way) and the same ranking."""
    if served["abstained"] != local["abstained"]:
        if abs(served["confidence"] - local["confidence"]) > tolerance:
            return (f"Triton {'abstained' if served['abstained'] else 'answered'} (confidence {served['confidence']}), "
                    f"in-process {'abstained' if local['abstained'] else 'answered'} (confidence {local['confidence']})")
        return None
    return same_answers(served["answers"], local["answers"], tolerance)


def contract_test(qa: TritonQAClient, name: str, local: Retriever) -> None:
    """Triton's replies equal the in-process model's, on in-domain questions and on questions it should refuse."""
    questions = [*CONTRACT_QUESTIONS, *OFF_TOPIC_CONTRACT_QUESTIONS]
    served = qa.ask(questions, top_k=CONTRACT_TOP_K, model_name=name)
    expected = local.reply(questions, top_k=CONTRACT_TOP_K)
    for question, a, b in zip(questions, served, expected, strict=True):
        problem = same_reply(a, b)
        if problem:
            raise MlopsError(f"contract test failed on {question!r}: {problem}")


def install(staged_version: Path, live_repository: Path) -> Path:
    """Make the staged version the only one in the live repository (what serving loads)."""
    name = staged_version.parent.name
    live_model = live_repository / name
    live_model.mkdir(parents=True, exist_ok=True)
    target = live_model / staged_version.name
    trash = Path(tempfile.mkdtemp(prefix=".replaced-", dir=live_repository))
    if target.exists():
        os.replace(target, trash / "previous")
    os.replace(staged_version, target)
    shutil.copyfile(staged_version.parent / "config.pbtxt", live_model / "config.pbtxt.tmp")
    os.replace(live_model / "config.pbtxt.tmp", live_model / "config.pbtxt")
    for other in live_model.iterdir():
        if other.is_dir() and other.name != target.name:
            os.replace(other, trash / other.name)
    shutil.rmtree(trash, ignore_errors=True)
    return target


def crown(settings: Settings, version: str, echo=print) -> None:
    """Move ``champion`` to ``version`` (it is served and smoke-tested), which stops being ``candidate``."""
    client = tracking.configure(settings)
    registry.promote_champion(client, settings.model_name, str(registry.get_version(client, settings.model_name, version).version))
    echo(f"champion -> {settings.model_name} version {version}")


def deploy(settings: Settings, version: str | None = None, echo=print, *, move_champion: bool = True) -> ModelVersion:
    client = tracking.configure(settings)
    model_version = registry.given_or_candidate(client, settings.model_name, version)
    echo(f"deploying {settings.model_name} version {model_version.version} (run {model_version.run_id})")
    settings.triton_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=settings.triton_dir))
    try:
        folder = export_version(settings, client, model_version, staging, echo=echo)
        started = time.perf_counter()
        with TritonServer(staging, settings.logs_dir / f"triton-deploy-v{model_version.version}") as server:
            echo(f"  tritonserver up at http://{server.http_url} ({time.perf_counter() - started:.1f}s); loading the model")
            server.load_model(settings.model_name)
            with TritonQAClient(server.http_url) as qa:
                smoke_test(qa, settings.model_name)
                echo("  smoke test passed")
                contract_test(qa, settings.model_name, Retriever.load(folder))
                echo(f"  contract test passed: {len(CONTRACT_QUESTIONS) + len(OFF_TOPIC_CONTRACT_QUESTIONS)} questions, the same abstentions, "
                     f"top-{CONTRACT_TOP_K} symbols and scores equal")
            if move_champion:
                live = install(folder, settings.triton_repository)
                registry.promote_champion(client, settings.model_name, model_version.version)
                echo(f"  champion -> version {model_version.version}; live repository {live}")
            else:
                echo(f"  version {model_version.version} stays 'candidate' until the environment serving it passes its smoke test")
        echo("  tritonserver stopped")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return model_version
