"""Integration fixtures: a built dataset under an isolated `.mlops/`, and a champion deployed on a real Triton."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from mlops.core.settings import Settings
from mlops.lifecycle import registry, tracking
from mlops.lifecycle.deploy import deploy
from mlops.pipeline import build_data, register_run
from support.lifecycle import folder_digest, trained_and_passed
from support.pod_user import PodUser, make_pod_user


@pytest.fixture(scope="session")
def pod_user(tmp_path_factory: pytest.TempPathFactory) -> PodUser | None:
    """The images' non-root user (uid 1000) with an interpreter it can run; None where this machine cannot switch users."""
    return make_pod_user(tmp_path_factory.mktemp("pod-user"))


@pytest.fixture
def settings(mlops_home: Path, natural_file: Path, mini_package: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MLOPS_NATURAL_QUESTIONS", str(natural_file))
    monkeypatch.setenv("MLOPS_NATURAL_DEV", str(natural_file))
    settings = Settings.from_env()
    build_data(settings, mini_package, echo=lambda *_: None)
    return settings


@dataclass
class Champion:
    client: object
    version: str  # trained, passed, registered as the candidate, then deployed: the champion
    lines: list[str]  # what the deploy printed
    digest: str  # the Triton repository right after the deploy


@pytest.fixture
def champion(settings: Settings) -> Champion:
    client = tracking.configure(settings)
    version = register_run(settings, trained_and_passed(settings), echo=lambda *_: None)
    assert str(registry.by_alias(client, settings.model_name, registry.CANDIDATE).version) == version
    lines: list[str] = []
    deploy(settings, echo=lines.append)  # the candidate
    return Champion(client, version, lines, folder_digest(settings.triton_repository))
