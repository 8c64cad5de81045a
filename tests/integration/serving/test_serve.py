"""`mlops serve` brings up Triton with the champion and the API; `mlops smoke` checks what it serves; Ctrl-C stops both."""

from __future__ import annotations

import json
import signal
import urllib.request

import psutil
import pytest

from mlops.core.errors import MlopsError
from mlops.core.settings import Settings
from mlops.release.smoke import smoke
from support.lifecycle import assert_unchanged
from support.services import ApiProcess


def test_serve_runs_the_champion_smoke_checks_it_and_ctrl_c_stops_both(settings: Settings, champion):
    client, version, before, lines = champion.client, champion.version, champion.digest, champion.lines
    second = str(int(version) + 1)  # a version the API does not serve
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
    assert_unchanged(settings, client, version, before)
    assert not list(settings.triton_dir.glob("staging-*"))
