"""A run with real training checkpoints, as mlops.training.train logs them, without training the encoder."""

from __future__ import annotations

import mlflow
import torch

from mlops.training import checkpoint
from mlops.training.strategy import Parallel


def run_with_checkpoints(steps: tuple[int, ...]) -> tuple[str, torch.nn.Module]:
    """A new run (on the tracking store configured) with a checkpoint of a small model logged at each of ``steps``,
    taking turns between the two files as training does; the run id and the model as last saved."""
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    slot, parallel, scaler = None, Parallel(model, "ddp", 1), torch.amp.GradScaler("cuda", enabled=False)
    with mlflow.start_run() as run:
        for step in steps:
            model(torch.ones(1, 4)).sum().backward()
            optimizer.step()
            slot = checkpoint.save(step, step / 10, parallel, optimizer, scheduler, scaler, 0, 1, slot)
    return run.info.run_id, model
