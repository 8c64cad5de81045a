"""A 2-process training run (DDP; FSDP in the slow tier), one of its workers killed with SIGKILL mid-way (as the kernel does out of memory), ends
with the exit code the workflow retries; resumed from its last checkpoint, it ends with the same weights as the same
run left alone, in the same MLflow run, and a retry after that trains nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import torch

from mlops.core.errors import PROCESSES_LOST, MlopsError
from mlops.core.settings import Settings
from mlops.lifecycle import tracking
from mlops.search.encoder import Encoder
from mlops.training.checkpoint import FOLDER, LATEST, TAG_RESUME_KEY, TAG_RESUMED, decide
from mlops.training.config import TrainConfig
from support.cli import MLOPS, invoke, run

# The mini package has 31 train pairs: 3 steps of 8 an epoch, so 3 epochs for 8 steps (a checkpoint every 2).
TRAIN = ["train", "--nproc-per-node", "2", "--batch-size", "8", "--epochs", "3", "--max-steps", "8", "--checkpoint-every", "2",
         "--seed", "3"]
CONFIG = TrainConfig(batch_size=8, epochs=3, max_steps=8, checkpoint_every=2, seed=3)
KEY = "3f1c8a52-7d0e-4b8e-9a51-0c2d5e6f7a81"  # a workflow's uid
RESUME = ["--resume", "--resume-key", KEY]


def weights(client, run_id: str, cache: Path) -> dict[str, torch.Tensor]:
    return Encoder(tracking.download(client, run_id, tracking.MODEL_ARTIFACT, cache), device="cpu").model.state_dict()


@pytest.mark.parametrize("strategy", ["ddp", pytest.param("fsdp", marks=pytest.mark.slow)])
def test_a_killed_two_process_run_resumes_to_the_weights_it_would_have_had(tmp_path: Path, mini_package: Path, strategy: str,
                                                                          monkeypatch: pytest.MonkeyPatch):
    train, config = [*TRAIN, "--strategy", strategy], CONFIG.model_copy(update={"strategy": strategy})
    monkeypatch.setenv("GIT_SHA", "c" * 40)  # the commit resuming matches on, the same for every process here
    home = tmp_path / "home"
    assert invoke("data", "--source", str(mini_package), home=home).returncode == 0
    client = tracking.configure(Settings(home=home, tracking_uri=f"sqlite:///{home / 'mlflow.db'}"))
    alone = run(*train, home=home)
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert client.list_artifacts(alone.stdout.strip(), FOLDER) == []  # a finished run keeps no checkpoint

    # The same training as a workflow's step runs it; the finished run above has no key, so it starts afresh.
    environment = {**os.environ, "MLOPS_HOME": str(home)}
    environment.pop("MLFLOW_TRACKING_URI", None)
    killed = subprocess.Popen([MLOPS, *train, *RESUME], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline, found = time.monotonic() + 300, None
    while found is None and time.monotonic() < deadline and killed.poll() is None:
        for candidate in client.search_runs([tracking.experiment_id(client)], "attributes.status = 'RUNNING'"):
            if any(a.path.endswith(LATEST) for a in client.list_artifacts(candidate.info.run_id, FOLDER)):
                found = candidate
        time.sleep(0.05)
    assert found is not None, f"no checkpoint before the run ended: {killed.communicate()[1][-3000:]}"
    run_id = found.info.run_id
    assert found.data.tags[TAG_RESUME_KEY] == KEY

    # While its trainer lives, nothing takes the run over.
    with pytest.raises(MlopsError, match=f"run {run_id} is still being trained by process"):
        decide(client, found.data.tags[tracking.TAG_DATASET], config, 2, KEY)

    # Out of memory: the kernel kills one worker; torchrun stops the other, and the command says its processes were
    # lost with the exit code the workflow retries.
    (launcher,) = psutil.Process(killed.pid).children()
    workers = launcher.children()
    assert len(workers) == 2
    workers[-1].send_signal(signal.SIGKILL)
    _, stderr = killed.communicate(timeout=120)
    assert killed.returncode == PROCESSES_LOST and "a training process was killed or crashed" in stderr.decode(), stderr[-3000:]
    # unfinished: FAILED where rank 0 met its peer's loss as an error, RUNNING where torchrun stopped it first
    assert client.get_run(run_id).info.status in ("FAILED", "RUNNING")
    assert not any(a.path.startswith(tracking.MODEL_ARTIFACT) for a in client.list_artifacts(run_id))

    resumed = run(*train, *RESUME, home=home)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.strip() == run_id and f"resuming run {run_id} from its checkpoint at step " in resumed.stderr, resumed.stderr[-3000:]
    finished = client.get_run(run_id)
    assert finished.info.status == "FINISHED" and finished.data.tags[TAG_RESUMED]
    assert client.list_artifacts(run_id, FOLDER) == []
    # Every step after the checkpoint is the same computation in the same order (data order from the seed, each
    # rank's dropout from its saved generator, AdamW's moments and the schedule restored): equal to float rounding.
    first, second = weights(client, alone.stdout.strip(), tmp_path / "cache"), weights(client, run_id, tmp_path / "cache")
    assert first.keys() == second.keys()
    assert max((first[k] - second[k]).abs().max().item() for k in first) <= 1e-6  # 0.0 here: bit for bit; the margin is for a
    # BLAS that sums in another order elsewhere
    # one loss per step: the killed attempt's and the resumed one's, none twice
    assert sorted(m.step for m in client.get_metric_history(run_id, "train_loss")) == list(range(1, 9))

    # A step retried after its training finished reports that run and trains nothing.
    again = run(*train, *RESUME, home=home)
    assert again.returncode == 0 and again.stdout.strip() == run_id and "has finished already: nothing to train" in again.stderr
