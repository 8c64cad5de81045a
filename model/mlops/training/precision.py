"""Mixed precision for training: which autocast dtype a run uses, and the grad scaler fp16 needs.

``auto`` is what the release workflow passes: bf16 on a GPU that has it, fp16 on one that does not (the RTX 6000
nodes: Turing), fp32 on CPU, where bf16 autocast is emulated and slower than fp32 on CPUs without AMX.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

from mlops.core.errors import MlopsError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve(precision: str, device: torch.device) -> str:
    """The precision a run on ``device`` uses for ``precision`` (the option's value); fp16 only on a GPU."""
    if precision == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp16" and device.type != "cuda":
        raise MlopsError("--precision fp16 needs a GPU (its grad scaler is CUDA's); on CPU use bf16 or fp32")
    return precision


def autocast(precision: str, device: torch.device) -> AbstractContextManager:
    """Forward passes in the resolved precision's dtype (weights, optimiser state and the loss stay fp32)."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


def grad_scaler(precision: str) -> torch.amp.GradScaler:
    """fp16's loss scaling, so small gradients do not flush to zero; a scaler that does nothing otherwise."""
    return torch.amp.GradScaler("cuda", enabled=precision == "fp16")
