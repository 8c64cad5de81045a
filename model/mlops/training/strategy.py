"""How the processes of one training share the model: DDP, where each holds all of it, or FSDP, where each holds a shard.

DDP keeps a whole copy of the weights, gradients and AdamW's two moments on every process and all-reduces the
gradients. FSDP (PyTorch's ``fully_shard``) keeps 1/N of each on every process: each transformer layer gathers its
weights just before its forward and backward and frees them after, and gradients are reduce-scattered to their
shard's owner. It trades communication for memory, so it pays where the model does not fit one device; the
training-time study (mlops.training.study) measures what it costs here. One process needs neither.

Checkpoints and the saved model hold the whole, unsharded state under the module's own parameter names (through
torch.distributed.checkpoint.state_dict), so neither depends on the strategy or the number of processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Literal

import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_state_dict, set_state_dict
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler
from torch.nn.parallel import DistributedDataParallel

from mlops.training import precision as precisions

Strategy = Literal["ddp", "fsdp"]
WHOLE = StateDictOptions(full_state_dict=True, cpu_offload=True)


class Parallel:
    """A model prepared for ``world_size`` processes: ``module`` is what the forward passes call."""

    def __init__(self, model: torch.nn.Module, strategy: Strategy, world_size: int):
        """``model``'s parameters that take no part in the loss must not require gradients: DDP would wait for them."""
        self.strategy = strategy if world_size > 1 else "none"
        if self.strategy == "fsdp":
            # One FSDP unit per block Transformers says must not be split (BERT: the embeddings and each layer), so
            # one layer's weights are whole at a time; the root holds the rest.
            for block in model.modules():
                if type(block).__name__ in (model._no_split_modules or ()):
                    fully_shard(block)
            self.module = fully_shard(model)
        elif self.strategy == "ddp":
            self.module = DistributedDataParallel(model)
        else:
            self.module = model

    def no_sync(self) -> AbstractContextManager:
        """Backward passes that keep their gradients on this process (all but gradient caching's last chunk)."""
        if self.strategy == "ddp":
            return self.module.no_sync()
        if self.strategy == "fsdp":
            return _fsdp_no_sync(self.module)
        return nullcontext()

    def grad_scaler(self, used: str) -> torch.amp.GradScaler:
        """fp16's loss scaling; under FSDP every process skips the same steps (an inf in any shard is seen by all)."""
        if self.strategy == "fsdp" and used == "fp16":
            return ShardedGradScaler("cuda")
        return precisions.grad_scaler(used)

    def state(self, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
        """The whole model's and optimiser's state on CPU (rank 0 has it; every process must call this)."""
        return get_state_dict(self.module, optimizer, options=WHOLE)

    def load(self, optimizer: torch.optim.Optimizer, model_state: dict, optimizer_state: dict) -> None:
        """Load a whole state from :meth:`state` into this (possibly sharded) model and its optimiser."""
        set_state_dict(self.module, optimizer, model_state_dict=model_state, optim_state_dict=optimizer_state,
                       options=StateDictOptions(full_state_dict=True))

    def weights(self) -> dict[str, torch.Tensor]:
        """The whole model's weights on CPU (rank 0 has them; every process must call this)."""
        return get_model_state_dict(self.module, options=WHOLE)


@contextmanager
def _fsdp_no_sync(module: FSDPModule) -> Iterator[None]:
    module.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        module.set_requires_gradient_sync(True)
