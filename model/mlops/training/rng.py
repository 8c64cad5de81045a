"""The random generators a training process draws from (dropout): saved with a checkpoint, replayed by gradient
caching. The CPU generator, and CUDA's where a GPU is."""

from __future__ import annotations

import torch


def state() -> list[torch.Tensor]:
    return [torch.get_rng_state(), *([torch.cuda.get_rng_state()] if torch.cuda.is_available() else [])]


def restore(saved: list[torch.Tensor]) -> None:
    """Set the generators to ``saved``; a CPU process's state has no CUDA part to restore."""
    torch.set_rng_state(saved[0])
    if len(saved) > 1 and torch.cuda.is_available():
        torch.cuda.set_rng_state(saved[1])
