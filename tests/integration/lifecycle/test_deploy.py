"""`mlops deploy` to a real Triton on a small synthetic package: the candidate becomes champion after its contract test,
and every failed deploy leaves the champion and the Triton repository as they were."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import mlflow
import pytest

from mlops.ask import ask
from mlops.core.errors import GateFailed, MlopsError
from mlops.core.settings import Settings
from mlops.evaluation.evaluate import evaluate
from mlops.evaluation.gate import GateConfig
from mlops.lifecycle import deploy as deploy_module
from mlops.lifecycle import registry, tracking
from mlops.lifecycle.deploy import deploy
from mlops.lifecycle.onnx_export import export_onnx
from mlops.pipeline import register_run
from mlops.search.encoder import Encoder
from mlops.search.retriever import Retriever
from mlops.search.settings import shipped_settings
from mlops.training.config import TrainConfig
from mlops.training.train import train
from support.lifecycle import FAST, assert_unchanged, pass_gate, shifted, trained_and_passed


def test_deploy_makes_the_candidate_the_champion_and_failed_deploys_leave_it_alone(settings: Settings, champion, monkeypatch,
                                                                                   tmp_path: Path):
    client, version, before = champion.client, champion.version, champion.digest
    assert any("contract test passed" in line for line in champion.lines)
    assert str(registry.by_alias(client, settings.model_name, registry.CHAMPION).version) == version
    assert registry.by_alias(client, settings.model_name, registry.CANDIDATE) is None
    live = settings.triton_repository / settings.model_name
    assert sorted(p.name for p in live.iterdir()) == [version, "config.pbtxt"]
    assert "dynamic_batching" in (live / "config.pbtxt").read_text()
    assert (live / version / "model.py").is_file()
    reply, served_by = ask(settings, "How do I continue a training run that crashed?", top_k=3)
    assert served_by == version and reply["answers"][0]["symbol"] == "minilib.training.Trainer.resume"

    # A second version whose model cannot load in Triton.
    second = register_run(settings, trained_and_passed(settings, seed=7), echo=lambda *_: None)
    broken_adapter = tmp_path / "model.py"
    broken_adapter.write_text("class TritonPythonModel:\n    def initialize(self, args):\n        raise RuntimeError('corrupt model')\n")
    monkeypatch.setattr("mlops.lifecycle.export.ADAPTER", broken_adapter)
    with pytest.raises(MlopsError, match="corrupt model"):
        deploy(settings, second, echo=lambda *_: None)
    monkeypatch.undo()
    assert_unchanged(settings, client, version, before)

    # A version whose Triton answers differ from the in-process model's.
    real_load = Retriever.load
    monkeypatch.setattr(deploy_module.Retriever, "load", lambda folder: shifted(real_load(folder)))
    with pytest.raises(MlopsError, match="contract test failed"):
        deploy(settings, second, echo=lambda *_: None)
    monkeypatch.undo()
    assert_unchanged(settings, client, version, before)

    # Unknown version, and no Triton binary.
    with pytest.raises(MlopsError, match="has no version '99'; known versions: 1, 2"):
        deploy(settings, "99", echo=lambda *_: None)
    monkeypatch.setattr("mlops.triton.server._pytriton_dir", lambda: None)
    with pytest.raises(MlopsError, match="tritonserver"):
        deploy(settings, second, echo=lambda *_: None)
    monkeypatch.undo()
    assert_unchanged(settings, client, version, before)
    assert not list(settings.triton_dir.glob("staging-*"))


def test_an_onnx_int8_version_is_served_by_triton_as_it_was_measured(settings: Settings, tmp_path: Path):
    """The real tritonserver loads the INT8 graph in its python backend, and its answers equal the in-process ones."""
    client = tracking.configure(settings)
    run_id = train(settings, TrainConfig(**FAST), echo=lambda *_: None)
    export_onnx(Encoder(tracking.download(client, run_id, tracking.MODEL_ARTIFACT, settings.cache_dir)), tmp_path / "onnx",
                echo=lambda *_: None)
    with mlflow.start_run(run_id=run_id):  # as evaluate logs them
        mlflow.log_artifacts(str(tmp_path / "onnx"), tracking.ONNX_ARTIFACT)
    pass_gate(settings, run_id, shipped_settings(0.3).model_copy(update={"encoder_variant": "onnx-int8"}))
    version = register_run(settings, run_id, echo=lambda *_: None)
    lines: list[str] = []
    deploy(settings, version, echo=lines.append)
    assert "  serving the onnx-int8 encoder" in lines and any("contract test passed" in line for line in lines)
    served = sorted(p.name for p in (settings.triton_repository / settings.model_name / version / "encoder").iterdir())
    assert "model-int8.onnx" in served and "model.safetensors" not in served
    reply, served_by = ask(settings, "How do I continue a training run that crashed?", top_k=3)
    assert served_by == version and reply["answers"][0]["symbol"] == "minilib.training.Trainer.resume"
    # The next candidate is compared with this champion as it serves: its INT8 graph encodes the questions.
    next_run = train(settings, TrainConfig(**FAST), echo=lambda *_: None)
    with contextlib.suppress(GateFailed):  # a 3-step model may fail the encoder check; the report is written first
        evaluate(settings, next_run, GateConfig(tolerance=1.0), echo=lambda *_: None)
    report = json.loads((settings.reports_dir / next_run / "report.json").read_text())
    assert str(report["champion_version"]) == version and "champion" in report["systems"]
