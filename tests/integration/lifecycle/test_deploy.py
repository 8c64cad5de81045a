"""train -> evaluate -> register -> deploy (real Triton) -> ask, on a small synthetic package."""

from __future__ import annotations

import hashlib
import json
import signal
import urllib.request
from pathlib import Path

import psutil
import pytest

from mlops.ask import ask
from mlops.core.errors import GateFailed, MlopsError
from mlops.core.settings import Settings
from mlops.data import dataset
from mlops.evaluation.evaluate import GateConfig, evaluate
from mlops.lifecycle import deploy as deploy_module
from mlops.lifecycle import registry, tracking
from mlops.lifecycle.deploy import deploy
from mlops.lifecycle.export import export_version
from mlops.lifecycle.publish import publish
from mlops.pipeline import build_data, register_run
from mlops.release.smoke import smoke
from mlops.search import lexical
from mlops.search.lexical import QueryExpansion
from mlops.search.retriever import Retriever
from mlops.search.settings import RetrievalSettings, shipped_settings
from mlops.training.train import TrainConfig, train
from services import ApiProcess, s3_server

FAST = dict(max_steps=3, batch_size=8, rules=("how", "summary", "argument", "what"))


@pytest.fixture
def settings(mlops_home: Path, natural_file: Path, mini_package: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MLOPS_NATURAL_QUESTIONS", str(natural_file))
    monkeypatch.setenv("MLOPS_NATURAL_DEV", str(natural_file))
    settings = Settings.from_env()
    build_data(settings, mini_package, echo=lambda *_: None)
    return settings


def _folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


def pass_gate(settings: Settings, run_id: str, retrieval: RetrievalSettings | None = None) -> None:
    """Record the settings measured and a passing verdict, as `mlops evaluate` does, so the deploy path can be
    tested on its own."""
    client = tracking.configure(settings)
    retrieval = retrieval or shipped_settings(0.3)
    tracking.log_retrieval_settings(client, run_id, retrieval.digest(), retrieval.model_dump())
    verdict = {tracking.TAG_GATE: "passed", tracking.TAG_GATE_REASON: "test", tracking.TAG_BM25_WEIGHT: str(retrieval.bm25_weight)}
    for key, value in verdict.items():
        client.set_tag(run_id, key, value)


def test_training_logs_params_loss_and_model(settings: Settings):
    run_id = train(settings, TrainConfig(**FAST), echo=lambda *_: None)
    client = tracking.configure(settings)
    run = client.get_run(run_id)
    assert run.data.params["world_size"] == "1" and run.data.params["max_steps"] == "3"
    assert [m.step for m in client.get_metric_history(run_id, "train_loss")] == [1, 2, 3]
    assert run.data.metrics["train_seconds"] > 0
    artifacts = {a.path for a in client.list_artifacts(run_id, "model")}
    assert "model/model.safetensors" in artifacts and "model/tokenizer.json" in artifacts
    assert {a.path for a in client.list_artifacts(run_id, "dataset")} >= {"dataset/corpus.jsonl", "dataset/test.jsonl"}
    assert run.data.tags[tracking.TAG_DATASET] == (settings.datasets_dir / "LATEST").read_text().strip()


def test_gate_blocks_a_broken_candidate(settings: Settings):
    trained_rules = ("how", "summary", "argument")
    broken = TrainConfig(max_steps=12, batch_size=8, learning_rate=2e-3, shuffle_labels=True, rules=trained_rules)
    run_id = train(settings, broken, echo=lambda *_: None)
    with pytest.raises(GateFailed, match="candidate_dense test_trained_rules mrr > untuned test_trained_rules mrr is false"):
        evaluate(settings, run_id, GateConfig(), echo=lambda *_: None)
    report = json.loads((settings.reports_dir / run_id / "report.json").read_text())
    assert report["gate"]["passed"] is False
    # The encoder check read only the test questions of the rules the run trained on.
    test_pairs = dataset.load_split(dataset.resolve(settings.datasets_dir, None), "test")
    gate_count = report["systems"]["untuned"]["test_trained_rules"]["overall"]["count"]
    assert gate_count == sum(p.rule in trained_rules for p in test_pairs) < len(test_pairs)
    assert set(report["systems"]) == {"candidate", "candidate_dense", "untuned", "bm25"}
    assert (settings.reports_dir / run_id / "metrics.png").stat().st_size > 10_000
    client = tracking.configure(settings)
    tags = client.get_run(run_id).data.tags
    assert tags[tracking.TAG_GATE] == "failed"
    # What the candidate was measured with is logged with the run, under its digest.
    logged = RetrievalSettings.model_validate(tracking.load_retrieval_settings(run_id, tags[tracking.TAG_RETRIEVAL]))
    assert logged == shipped_settings(report["bm25_weight"]) and logged.digest() == tags[tracking.TAG_RETRIEVAL]
    with pytest.raises(MlopsError, match="cannot be registered: gate failed"):
        register_run(settings, run_id, echo=lambda *_: None)
    assert client.search_model_versions(f"name = '{settings.model_name}'") == []


def test_unevaluated_run_cannot_be_registered(settings: Settings):
    run_id = train(settings, TrainConfig(**FAST), echo=lambda *_: None)
    with pytest.raises(MlopsError, match="gate not run"):
        register_run(settings, run_id, echo=lambda *_: None)


def test_an_export_answers_with_the_settings_its_version_was_measured_with(settings: Settings, monkeypatch, tmp_path: Path):
    client = tracking.configure(settings)
    run_id = train(settings, TrainConfig(**FAST), echo=lambda *_: None)
    measured = RetrievalSettings(bm25_weight=0.4, public_api_prior=0.1, query_expansion=QueryExpansion(weight=0.5, entries={"crashed": "resume"}))
    pass_gate(settings, run_id, measured)
    version = client.get_model_version(settings.model_name, register_run(settings, run_id, echo=lambda *_: None))
    assert version.tags[tracking.TAG_RETRIEVAL] == measured.digest()
    # Later the checkout's thesaurus changes, and the run is evaluated again with it: the version keeps its own.
    edited = tmp_path / "edited.yaml"
    edited.write_text("weight: 1.0\nentries: {settings: config}\n")
    monkeypatch.setattr(lexical, "QUERY_EXPANSION_FILE", edited)
    pass_gate(settings, run_id, shipped_settings(0.4))
    assert Retriever.load(export_version(settings, client, version, tmp_path / "exact", echo=lambda *_: None)).settings == measured


def test_deploy_to_triton_then_failures_leave_champion_and_export_alone(settings: Settings, monkeypatch, tmp_path: Path):
    client = tracking.configure(settings)
    with pytest.raises(MlopsError, match="has no champion yet"):
        ask(settings, "How do I resume training?")
    run_id = train(settings, TrainConfig(**FAST), echo=lambda *_: None)
    pass_gate(settings, run_id)
    version = register_run(settings, run_id, echo=lambda *_: None)
    assert str(registry.by_alias(client, settings.model_name, registry.CANDIDATE).version) == version
    tags = client.get_model_version(settings.model_name, version).tags
    assert tags["dataset_hash"] and tags["git_sha"] and tags[tracking.TAG_BM25_WEIGHT] == "0.3"

    lines: list[str] = []
    deploy(settings, echo=lines.append)  # the candidate
    assert any("contract test passed" in line for line in lines)
    assert str(registry.by_alias(client, settings.model_name, registry.CHAMPION).version) == version
    assert registry.by_alias(client, settings.model_name, registry.CANDIDATE) is None
    live = settings.triton_repository / settings.model_name
    assert sorted(p.name for p in live.iterdir()) == [version, "config.pbtxt"]
    assert "dynamic_batching" in (live / "config.pbtxt").read_text()
    assert (live / version / "model.py").is_file()
    answers, served_by = ask(settings, "How do I continue a training run that crashed?", top_k=3)
    assert served_by == version and answers[0]["symbol"] == "minilib.training.Trainer.resume"
    before = _folder_digest(settings.triton_repository)

    # Publishing uploads exactly what Triton passed its tests with, in the layout the chart fetches.
    with s3_server("models") as s3:
        assert publish(settings, version, "s3://models", echo=lambda *_: None) == f"s3://models/{settings.model_name}/{version}"
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="models")["Contents"])
        files = sorted(p for p in live.rglob("*") if p.is_file() and "__pycache__" not in p.parts)  # Triton's bytecode
        assert keys == sorted(f"{settings.model_name}/{p.relative_to(live).as_posix()}" for p in files)
        for path in files:
            key = f"{settings.model_name}/{path.relative_to(live).as_posix()}"
            assert s3.get_object(Bucket="models", Key=key)["Body"].read() == path.read_bytes(), key
    assert client.get_model_version(settings.model_name, version).tags["published_uri"] == f"s3://models/{settings.model_name}/{version}"

    # A second version whose model cannot load in Triton.
    second = register_run(settings, _trained_and_passed(settings), echo=lambda *_: None)
    broken_adapter = tmp_path / "model.py"
    broken_adapter.write_text("class TritonPythonModel:\n    def initialize(self, args):\n        raise RuntimeError('corrupt model')\n")
    monkeypatch.setattr("mlops.lifecycle.export.ADAPTER", broken_adapter)
    with pytest.raises(MlopsError, match="corrupt model"):
        deploy(settings, second, echo=lambda *_: None)
    monkeypatch.undo()
    _assert_unchanged(settings, client, version, before)

    # A version whose Triton answers differ from the in-process model's.
    real_load = Retriever.load
    monkeypatch.setattr(deploy_module.Retriever, "load", lambda folder: _shifted(real_load(folder)))
    with pytest.raises(MlopsError, match="contract test failed"):
        deploy(settings, second, echo=lambda *_: None)
    monkeypatch.undo()
    _assert_unchanged(settings, client, version, before)

    # Unknown version, and no Triton binary.
    with pytest.raises(MlopsError, match="has no version '99'; known versions: 1, 2"):
        deploy(settings, "99", echo=lambda *_: None)
    monkeypatch.setattr("mlops.triton.server._pytriton_dir", lambda: None)
    with pytest.raises(MlopsError, match="tritonserver"):
        deploy(settings, second, echo=lambda *_: None)
    monkeypatch.undo()

    # `mlops serve` brings up Triton with the champion and the API; Ctrl-C stops both.
    api = ApiProcess(None, settings.home)
    tritons = [p for p in psutil.Process(api.proc.pid).children(recursive=True) if p.name() == "tritonserver"]
    body = json.dumps({"question": "How do I continue a training run that crashed?", "top_k": 3}).encode()
    with urllib.request.urlopen(urllib.request.Request(api.url + "/v1/ask", body, {"content-type": "application/json"})) as response:
        served = json.loads(response.read())
    assert served["model_version"] == version and served["answers"][0]["symbol"] == "minilib.training.Trainer.resume"
    # After a promotion, `mlops smoke` waits for the API to serve the version, then checks its answers.
    smoke(api.url, version, timeout=30, echo=lines.append)
    assert lines[-1] == f"{api.url} serves version {version}; smoke test passed"
    with pytest.raises(MlopsError, match=f"after 0s the API at {api.url} serves version {version}, not version {second}"):
        smoke(api.url, second, timeout=0, echo=lambda *_: None)
    api.kill(signal.SIGINT)
    assert api.proc.returncode == 0
    assert len(tritons) == 1 and not tritons[0].is_running()
    _assert_unchanged(settings, client, version, before)
    assert not list(settings.triton_dir.glob("staging-*"))


def _trained_and_passed(settings: Settings) -> str:
    run_id = train(settings, TrainConfig(**{**FAST, "seed": 7}), echo=lambda *_: None)
    pass_gate(settings, run_id)
    return run_id


def _shifted(retriever: Retriever) -> Retriever:
    retriever.prior = retriever.prior + 0.05 * (retriever.prior == 0)  # different scores than Triton's copy
    return retriever


def _assert_unchanged(settings: Settings, client, champion: str, digest: str) -> None:
    assert str(registry.by_alias(client, settings.model_name, registry.CHAMPION).version) == champion
    assert _folder_digest(settings.triton_repository) == digest
