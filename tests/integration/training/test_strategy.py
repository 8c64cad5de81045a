"""DDP and FSDP (mlops.training.strategy) on two real gloo processes under torchrun: gradients averaged over the
processes as one process over the whole batch, with ``no_sync`` chunks as gradient caching uses them; the whole state
gathered from the shards and loaded back trains on identically (tests/support/strategy_worker.py does the work)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).parents[2] / "support" / "strategy_worker.py"


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_train_as_one_and_resume_from_their_whole_state(strategy: str, tmp_path: Path):
    out = tmp_path / "result.json"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", str(WORKER), strategy, str(out)],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["strategy"] == strategy
    if strategy == "fsdp":  # each block and the root are FSDP units
        assert result["sharded"] == ["FSDPTiny", "FSDPBlock", "FSDPBlock"], result["sharded"]
    else:
        assert result["sharded"] == []
    assert result["moved"] > 0.01  # six AdamW steps at lr 1e-2 move every weight
    # the same arithmetic but for the order of float sums (the all-reduce, the reduce-scatter)
    assert result["alone_difference"] <= 1e-4 * result["moved"], result
    assert result["resumed_difference"] == 0.0, result  # the same state, the same data, the same operations
    assert result["weights_are_the_state"]
