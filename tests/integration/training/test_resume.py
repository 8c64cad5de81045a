"""A 2-process training run killed with SIGKILL mid-way and resumed from its last checkpoint ends with the same
weights as the same run left alone, in the same MLflow run."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import torch

from mlops.core.settings import Settings
from mlops.lifecycle import tracking
from mlops.search.encoder import Encoder
from mlops.training.checkpoint import FOLDER, LATEST
from support.cli import MLOPS, invoke, run

# The mini package has 31 train pairs: 3 steps of 8 an epoch, so 3 epochs for 8 steps (a checkpoint every 2).
TRAIN = ["train", "--nproc-per-node", "2", "--batch-size", "8", "--epochs", "3", "--max-steps", "8", "--checkpoint-every", "2",
         "--seed", "3"]


def weights(client, run_id: str, cache: Path) -> dict[str, torch.Tensor]:
    return Encoder(tracking.download(client, run_id, tracking.MODEL_ARTIFACT, cache), device="cpu").model.state_dict()


def test_a_killed_two_process_run_resumes_to_the_weights_it_would_have_had(tmp_path: Path, mini_package: Path):
    home = tmp_path / "home"
    assert invoke("data", "--source", str(mini_package), home=home).returncode == 0
    client = tracking.configure(Settings(home=home, tracking_uri=f"sqlite:///{home / 'mlflow.db'}"))
    alone = run(*TRAIN, home=home)
    assert alone.returncode == 0, alone.stderr[-3000:]

    # The same run again, killed once its first checkpoint is logged: every process of it at once, as when its node
    # dies (torchrun starts each worker in a session of its own, so a process group is not enough).
    environment = {**os.environ, "MLOPS_HOME": str(home)}
    environment.pop("MLFLOW_TRACKING_URI", None)
    killed = subprocess.Popen([MLOPS, *TRAIN], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline, run_id = time.monotonic() + 300, None
    while run_id is None and time.monotonic() < deadline and killed.poll() is None:
        for found in client.search_runs([tracking.experiment_id(client)], "attributes.status = 'RUNNING'"):
            if any(a.path.endswith(LATEST) for a in client.list_artifacts(found.info.run_id, FOLDER)):
                run_id = found.info.run_id
        time.sleep(0.05)
    assert run_id is not None, f"no checkpoint before the run ended: {killed.communicate()[1][-3000:]}"
    tree = [psutil.Process(killed.pid), *psutil.Process(killed.pid).children(recursive=True)]
    assert len(tree) >= 4  # mlops, torchrun and its two workers
    for process in tree:
        process.send_signal(signal.SIGKILL)
    psutil.wait_procs(tree, timeout=60)
    killed.wait(timeout=60)
    assert client.get_run(run_id).info.status == "RUNNING"  # a SIGKILL leaves the run as it was, unfinished
    assert not any(a.path.startswith(tracking.MODEL_ARTIFACT) for a in client.list_artifacts(run_id))

    resumed = run(*TRAIN, "--resume", home=home)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.strip() == run_id and f"resuming run {run_id} from its checkpoint at step " in resumed.stderr, resumed.stderr[-3000:]
    assert client.get_run(run_id).info.status == "FINISHED"
    # Every step after the checkpoint is the same computation in the same order (data order from the seed, each
    # rank's dropout from its saved generator, AdamW's moments and the schedule restored): equal to float rounding.
    first, second = weights(client, alone.stdout.strip(), tmp_path / "cache"), weights(client, run_id, tmp_path / "cache")
    assert first.keys() == second.keys()
    assert max((first[k] - second[k]).abs().max().item() for k in first) <= 1e-6  # 0.0 here: bit for bit; the margin is for a
    # BLAS that sums in another order elsewhere
    steps = [m.step for m in client.get_metric_history(run_id, "train_loss")]
    assert steps[-1] == 8 and set(steps) == set(range(1, 9))  # losses before the kill were logged by the killed run
