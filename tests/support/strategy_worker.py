"""One process of a 2-process run (``torchrun --nproc-per-node 2 strategy_worker.py STRATEGY OUT``) of
mlops.training.strategy on a small model; rank 0 writes what tests/integration/training/test_strategy.py checks to OUT.

- **Averaging.** Each rank takes its half of every global batch. The first half of its half goes backward under
  ``no_sync``, as gradient caching's chunks do, and the second half with the sync. The weights must equal those of
  one process training on the whole batches.
- **Round trip.** The whole state gathered after some steps, loaded into a freshly made, differently seeded model
  under the same strategy, must train on exactly as the original does.
- **Weights.** ``weights`` must equal the state's model part.
"""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist

from mlops.training.strategy import Parallel

BATCH, WIDTH = 8, 16


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(WIDTH, WIDTH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.nn.functional.gelu(self.linear(x))


class Tiny(torch.nn.Module):
    _no_split_modules = ("Block",)  # as Transformers' models name theirs: one FSDP unit each

    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.Sequential(Block(), Block())
        self.head = torch.nn.Linear(WIDTH, 4)
        self.unused = torch.nn.Linear(WIDTH, 4)  # as BERT's pooler under mean pooling: frozen
        self.unused.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x))


def batch(step: int) -> torch.Tensor:
    return torch.randn(BATCH, WIDTH, generator=torch.Generator().manual_seed(step))


def train(module: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: range, share: slice, no_sync) -> None:
    for step in steps:
        x = batch(step)[share]
        half = x.shape[0] // 2
        with no_sync():
            (module(x[:half]).pow(2).sum() / BATCH).backward()  # this rank's part of the global batch's mean
        (module(x[half:]).pow(2).sum() / BATCH).backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def made(strategy: str, seed: int) -> tuple[Parallel, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    parallel = Parallel(Tiny(), strategy, dist.get_world_size())
    return parallel, torch.optim.AdamW(parallel.module.parameters(), lr=1e-2)


def largest_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys(), (sorted(a), sorted(b))
    return max((a[k] - b[k]).abs().max().item() for k in a)


def main(strategy: str, out: Path) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    share = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
    parallel, optimizer = made(strategy, seed=0)
    train(parallel.module, optimizer, range(3), share, parallel.no_sync)
    state = parallel.state(optimizer)
    checkpoint = out.with_name("checkpoint.pt")
    if rank == 0:
        torch.save(state, checkpoint)  # the state holds the live tensors where nothing had to be gathered
    dist.barrier()
    resumed, resumed_optimizer = made(strategy, seed=1)
    resumed.load(resumed_optimizer, *torch.load(checkpoint, weights_only=True))  # as every rank reads rank 0's file
    train(parallel.module, optimizer, range(3, 6), share, parallel.no_sync)
    train(resumed.module, resumed_optimizer, range(3, 6), share, resumed.no_sync)
    final, final_resumed = parallel.weights(), resumed.weights()
    final_state, _ = parallel.state(optimizer)
    if rank == 0:
        torch.manual_seed(0)
        alone = Tiny()  # one process, the whole batch, the same steps
        alone_optimizer = torch.optim.AdamW(alone.parameters(), lr=1e-2)
        initial = {k: v.clone() for k, v in alone.state_dict().items()}
        train(alone, alone_optimizer, range(6), slice(None), nullcontext)
        out.write_text(json.dumps({
            "strategy": parallel.strategy,
            "sharded": [type(m).__name__ for m in parallel.module.modules() if type(m).__name__.startswith("FSDP")],
            "resumed_difference": largest_difference(final, final_resumed),
            "alone_difference": largest_difference(final, alone.state_dict()),
            "moved": largest_difference(final, initial),
            "weights_are_the_state": largest_difference(final, final_state) == 0.0,
        }))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
