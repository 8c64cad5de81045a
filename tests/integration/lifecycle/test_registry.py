"""`mlops register`: only a run that passed the gate becomes the candidate, tagged with where it came from."""

from __future__ import annotations

import pytest

from mlops.ask import ask
from mlops.core.errors import MlopsError
from mlops.core.settings import Settings
from mlops.lifecycle import registry, tracking
from mlops.pipeline import register_run
from mlops.training.config import TrainConfig
from mlops.training.train import train
from support.lifecycle import FAST, pass_gate


def test_unevaluated_run_cannot_be_registered(settings: Settings):
    run_id = train(settings, TrainConfig(**FAST), echo=lambda *_: None)
    with pytest.raises(MlopsError, match="gate not run"):
        register_run(settings, run_id, echo=lambda *_: None)


def test_a_passed_run_becomes_the_candidate_with_its_lineage(settings: Settings):
    client = tracking.configure(settings)
    with pytest.raises(MlopsError, match="has no champion yet"):
        ask(settings, "How do I resume training?")
    run_id = train(settings, TrainConfig(**FAST), echo=lambda *_: None)
    pass_gate(settings, run_id)
    version = register_run(settings, run_id, echo=lambda *_: None)
    assert str(registry.by_alias(client, settings.model_name, registry.CANDIDATE).version) == version
    tags = client.get_model_version(settings.model_name, version).tags
    assert tags["dataset_hash"] and tags["git_sha"] and tags[tracking.TAG_BM25_WEIGHT] == "0.3"
