"""Gradient caching (Gao et al., 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup").

A contrastive loss needs the whole batch at once: every question is scored against every passage. Accumulating
the gradients of smaller batches would shrink the negatives each question sees. Instead, each chunk of the batch is
embedded without gradients, and the loss over all the embeddings gives the gradient of each one. Each chunk is then
embedded again with gradients, its dropout replayed from the same generator state, and back-propagates those
gradients. Loss and gradients are the whole batch's, in-batch negatives included, at the activation memory of one
chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

import torch

from mlops.training import rng

Embeddings = tuple[torch.Tensor, ...]


def backward(parts: Sequence, embed: Callable[[object], Embeddings], loss_of: Callable[[Embeddings], torch.Tensor],
             scale: Callable[[torch.Tensor], torch.Tensor] = lambda loss: loss,
             no_sync: Callable[[], AbstractContextManager] = nullcontext) -> torch.Tensor:
    """Back-propagate ``loss_of`` (the embeddings of all ``parts``, concatenated per output) into the model; returns the
    loss. One part is a plain forward and backward. ``scale`` is the fp16 grad scaler's; ``no_sync`` is DDP's, so
    gradients are reduced across processes once, with the last part."""
    if len(parts) == 1:
        loss = loss_of(embed(parts[0]))
        scale(loss).backward()
        return loss.detach()
    states, cached = [], []
    with torch.no_grad():
        for part in parts:
            states.append(rng.state())
            cached.append(embed(part))
    whole = [torch.cat([outputs[i] for outputs in cached]).detach().requires_grad_() for i in range(len(cached[0]))]
    loss = loss_of(tuple(whole))
    scale(loss).backward()  # gradients of the embeddings only: they are leaves, cut from the model
    starts = [0] * len(whole)
    for n, (part, state) in enumerate(zip(parts, states, strict=True)):
        rng.restore(state)
        with no_sync() if n < len(parts) - 1 else nullcontext():
            outputs = embed(part)
            grads = [w.grad[s : s + o.shape[0]] for w, s, o in zip(whole, starts, outputs, strict=True)]
            torch.autograd.backward(outputs, grads)
        starts = [s + o.shape[0] for s, o in zip(starts, outputs, strict=True)]
    return loss.detach()
