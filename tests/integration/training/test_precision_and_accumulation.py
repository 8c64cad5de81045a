"""Mixed precision and gradient caching in the real trainer: the same batch embedded in 4 chunks gives the loss and
the gradients of the whole batch at once (in-batch negatives kept), bf16 autocast really runs the encoder in bf16,
and a training with both logs a model; fp16 on CPU and a batch that does not split end in one line."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from mlops.core.settings import Settings
from mlops.lifecycle import tracking
from mlops.search.encoder import Encoder, base_model_path
from mlops.training import grad_cache
from mlops.training.config import TrainConfig
from mlops.training.train import Distributed, Example, _batch_loss, _embed_chunk, train
from support.cli import assert_clean_error, invoke
from support.lifecycle import FAST

CPU = torch.device("cpu")
BATCH = [Example(f"How do I {verb} a tokenizer's output?", f"{verb.title()} the ids the tokenizer returns.", i,
                 f"Load a model to {verb} weights.", 100 + i)
         for i, verb in enumerate(["pad", "truncate", "decode", "batch", "mask", "save", "split", "stream"])]


def gradients(chunks: int, used: str = "fp32") -> tuple[float, dict[str, torch.Tensor]]:
    """One backward pass of BATCH through the trainer's own embedding and loss, dropout off so every pass matches."""
    encoder = Encoder(base_model_path(), device="cpu")
    encoder.model.eval()
    config = TrainConfig()
    size = len(BATCH) // chunks
    loss = grad_cache.backward([BATCH[i : i + size] for i in range(0, len(BATCH), size)],
                               functools.partial(_embed_chunk, encoder, encoder.model, config=config, used=used, device=CPU),
                               functools.partial(_batch_loss, batch=BATCH, config=config, env=Distributed()))
    return loss.item(), {n: p.grad.clone() for n, p in encoder.model.named_parameters() if p.grad is not None}


def test_gradient_caching_gives_the_whole_batchs_loss_and_gradients():
    whole_loss, whole = gradients(1)
    chunked_loss, chunked = gradients(4)
    assert chunked_loss == pytest.approx(whole_loss, abs=1e-5)
    assert whole.keys() == chunked.keys() and len(whole) > 50
    # against the largest gradient: some are zero but for float noise (a key bias cannot change a softmax)
    largest = max(g.abs().max().item() for g in whole.values())
    assert max((whole[n] - chunked[n]).abs().max().item() for n in whole) < 1e-4 * largest  # sums in another order
    # plain accumulation would score each question against its own chunk only: a different (smaller) loss
    encoder = Encoder(base_model_path(), device="cpu")
    encoder.model.eval()
    half = _batch_loss(_embed_chunk(encoder, encoder.model, BATCH[:4], TrainConfig(), "fp32", CPU), BATCH[:4], TrainConfig(), Distributed())
    assert abs(half.item() - whole_loss) > 1e-3


def test_the_second_pass_replays_the_first_passs_dropout():
    """With dropout on, the cached gradients equal those of keeping every chunk's graph at once (the same masks, drawn
    in the same order): the second pass replays each chunk's generator state, or its masks would differ."""
    config, env = TrainConfig(), Distributed()
    parts = [BATCH[i : i + 2] for i in range(0, len(BATCH), 2)]
    runs = []
    for cached in (True, False):
        encoder = Encoder(base_model_path(), device="cpu")
        encoder.model.train()
        torch.manual_seed(5)
        embed = functools.partial(_embed_chunk, encoder, encoder.model, config=config, used="fp32", device=CPU)
        loss_of = functools.partial(_batch_loss, batch=BATCH, config=config, env=env)
        if cached:
            grad_cache.backward(parts, embed, loss_of)
        else:
            outputs = [embed(part) for part in parts]
            loss_of(tuple(torch.cat([o[i] for o in outputs]) for i in range(3))).backward()
        runs.append({n: p.grad.clone() for n, p in encoder.model.named_parameters() if p.grad is not None})
    largest = max(g.abs().max().item() for g in runs[1].values())
    assert max((runs[0][n] - runs[1][n]).abs().max().item() for n in runs[1]) < 1e-4 * largest


def test_bf16_autocast_runs_the_encoder_in_bf16():
    encoder = Encoder(base_model_path(), device="cpu")
    seen = []
    encoder.model.encoder.layer[0].attention.self.query.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    with torch.no_grad():
        bf16 = _embed_chunk(encoder, encoder.model, BATCH[:2], TrainConfig(), "bf16", CPU)
        fp32 = _embed_chunk(encoder, encoder.model, BATCH[:2], TrainConfig(), "fp32", CPU)
    assert seen == [torch.bfloat16, torch.bfloat16, torch.float32, torch.float32]  # questions, passages; each precision
    # autocast keeps the pooling and normalisation in fp32; the embeddings differ by bf16's rounding only
    assert bf16[0].dtype == torch.float32 and 0 < (bf16[0] - fp32[0]).abs().max().item() < 0.05


def test_a_bf16_run_with_gradient_caching_logs_its_precision_and_a_model(settings: Settings):
    run_id = train(settings, TrainConfig(**FAST, precision="bf16", grad_accum=2), echo=lambda *_: None)
    client = tracking.configure(settings)
    run = client.get_run(run_id)
    assert run.data.params["precision_used"] == "bf16" and run.data.params["grad_accum"] == "2"
    losses = [m.value for m in client.get_metric_history(run_id, "train_loss")]
    assert len(losses) == 3 and all(0 < v < 100 for v in losses)
    assert any(a.path == "model/model.safetensors" for a in client.list_artifacts(run_id, "model"))


def test_auto_precision_is_fp32_on_cpu(settings: Settings):
    run_id = train(settings, TrainConfig(**FAST, precision="auto"), echo=lambda *_: None)
    assert tracking.configure(settings).get_run(run_id).data.params["precision_used"] == "fp32"


@pytest.mark.parametrize(("args", "message"), [
    (["--precision", "fp16"], "--precision fp16 needs a GPU"),
    (["--grad-accum", "3"], "does not split into 3 chunks"),
    (["--precision", "fp8"], "precision"),
])
def test_precision_and_accumulation_mistakes_are_one_line(mlops_home: Path, mini_package: Path, args: list[str], message: str):
    assert invoke("data", "--source", str(mini_package), home=mlops_home).returncode == 0
    assert_clean_error(invoke("train", "--batch-size", "8", "--max-steps", "1", *args, home=mlops_home), message)
