"""Fine-tune the encoder with a contrastive loss: in-batch negatives plus one BM25 hard negative per question.

Runs in one process, or under ``torchrun`` with DDP or FSDP (mlops.training.strategy; gloo on CPU,
nccl on GPU): each rank encodes its share of the batch, embeddings are all-gathered so every
question is scored against the passages of the whole global batch, and rank 0 alone logs to MLflow
and writes the one saved model. With ``checkpoint_every`` the run logs checkpoints as it goes, and ``resume`` continues
a killed run of the same training from its last one (mlops.training.checkpoint says which run).
"""

from __future__ import annotations

import functools
import math
import os
import random
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import mlflow
import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from pydantic import BaseModel

from mlops.core.errors import MlopsError
from mlops.core.settings import Settings
from mlops.data import dataset
from mlops.data.text import passage
from mlops.lifecycle import tracking
from mlops.search.encoder import Encoder, base_model_path
from mlops.search.lexical import BM25Index
from mlops.search.settings import QUERY_MAX_TOKENS
from mlops.training import checkpoint, grad_cache, precision, rng
from mlops.training.config import TrainConfig
from mlops.training.strategy import Parallel

LOG_EVERY = 5


class Distributed(BaseModel):
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Distributed:
    """Join the process group when launched by torchrun (it sets WORLD_SIZE/RANK/LOCAL_RANK)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    info = Distributed(rank=dist.get_rank(), world_size=world_size, local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if backend == "nccl":
        torch.cuda.set_device(info.local_rank)
    return info


class Example(NamedTuple):
    question: str
    passage: str
    passage_id: int
    negative: str  # a hard negative: the best BM25 match that is not the answer
    negative_id: int


def _training_examples(folder: Path, config: TrainConfig) -> list[Example]:
    """Question, answer passage and a hard negative, for each train-split pair of the chosen rules."""
    corpus = sorted(dataset.load_corpus(folder), key=lambda s: s.symbol)
    texts = [passage(s) for s in corpus]
    ids = {s.symbol: i for i, s in enumerate(corpus)}
    pairs = [(p.question, ids[p.symbol]) for p in dataset.load_split(folder, "train") if p.rule in config.rules]
    if config.shuffle_labels:
        answers = [i for _, i in pairs]
        random.Random(config.seed).shuffle(answers)
        pairs = [(q, i) for (q, _), i in zip(pairs, answers, strict=True)]
    # The docstring's words, not the code's, and no query expansion: training questions already use the
    # docstring's words, and code-word negatives are no better (docs/experiments.md).
    bm25 = BM25Index(texts)
    same_text: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        same_text.setdefault(text, []).append(i)
    examples = []
    for question, answer in pairs:
        scores = bm25.scores(question)
        scores[same_text[texts[answer]]] = -np.inf  # neither the answer nor an exact copy of it is a negative
        negative = int(np.argmax(scores))
        examples.append(Example(question, texts[answer], answer, texts[negative], negative))
    return examples


def _contrastive_loss(q: torch.Tensor, p: torch.Tensor, ids: torch.Tensor, scale: float, env: Distributed) -> torch.Tensor:
    """Cross-entropy of each question against every passage (answers, then hard negatives) in the global batch.

    ``p`` and ``ids`` hold this rank's answers followed by its hard negatives.
    """
    if env.world_size > 1:
        p_all = torch.cat(dist_fn.all_gather(p), dim=0)  # differentiable: gradients flow back to each rank
        ids_all = torch.cat(dist_fn.all_gather(ids), dim=0)
    else:
        p_all, ids_all = p, ids
    logits = scale * q @ p_all.T
    targets = torch.arange(q.shape[0], device=q.device) + env.rank * p.shape[0]
    # A passage that is this question's answer is not a negative of it, wherever it appears in the batch.
    answer_ids = ids[: q.shape[0]]
    duplicate = (answer_ids.unsqueeze(1) == ids_all.unsqueeze(0)) & ~torch.nn.functional.one_hot(targets, p_all.shape[0]).bool()
    logits = logits.masked_fill(duplicate, float("-inf"))
    return torch.nn.functional.cross_entropy(logits, targets)


def _embed_chunk(encoder: Encoder, model: torch.nn.Module, part: list[Example], config: TrainConfig, used: str,
                 device: torch.device) -> grad_cache.Embeddings:
    """Questions, answers and hard negatives of a chunk, in the run's precision (answers and negatives in one pass,
    padded together)."""
    with precision.autocast(used, device):
        q = encoder.embed(encoder.tokenize([e.question for e in part], QUERY_MAX_TOKENS), model=model)
        p = encoder.embed(encoder.tokenize([e.passage for e in part] + [e.negative for e in part], config.passage_tokens), model=model)
    return q, p[: len(part)], p[len(part) :]


def _batch_loss(embeddings: grad_cache.Embeddings, batch: list[Example], config: TrainConfig, env: Distributed) -> torch.Tensor:
    """The contrastive loss of a process's whole batch from its chunks' embeddings (in fp32)."""
    q, answers, negatives = (e.float() for e in embeddings)
    ids = torch.tensor([e.passage_id for e in batch] + [e.negative_id for e in batch], device=q.device)
    return _contrastive_loss(q, torch.cat([answers, negatives]), ids, config.scale, env)


def _peak_memory_mb(device: torch.device) -> float:
    """This process's peak memory: the GPU's allocations on a GPU, else its peak resident set (libraries included)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _lr_at(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


class Progress(NamedTuple):
    """Called on rank 0 with the step, the encoder (in eval mode) and whether it is the last step, every ``every``
    steps and after the last."""
    every: int
    call: Callable[[int, Encoder, bool], None]


def train(settings: Settings, config: TrainConfig, dataset_hash: str | None = None, echo=print, resume: bool = False,
          resume_key: str | None = None, parent_run_id: str | None = None, progress: Progress | None = None,
          keep_model: bool = True) -> str | None:
    """Train one model; returns the MLflow run id on rank 0 (None on other ranks). ``parent_run_id`` nests the run
    under a study's or a search's run; a search's trials, scored by ``progress``, keep no model (``keep_model``)."""
    env = init_distributed()
    try:
        return _train(settings, config, dataset_hash, env, echo if env.is_main else (lambda *_: None), resume, resume_key,
                      parent_run_id, progress, keep_model)
    finally:
        if env.world_size > 1:
            dist.destroy_process_group()


def _resumed(settings: Settings, config: TrainConfig, dataset_hash: str, env: Distributed, key: str | None,
             echo) -> tuple[checkpoint.Decision, dict | None]:
    """What --resume does (rank 0 decides, every rank learns it) and, to resume, the checkpoint every rank loads."""
    decided: list = [None, None]
    if env.is_main:
        decided[0] = checkpoint.decide(tracking.configure(settings), dataset_hash, config, env.world_size, key)
        if decided[0].action == "resume":
            state = checkpoint.load(decided[0].run_id)
            decided[1] = state["file"]
    if env.world_size > 1:
        dist.broadcast_object_list(decided, src=0)
    decision, slot = decided
    if decision.action != "resume":
        echo(f"{decision.reason}: {'nothing to train' if decision.action == 'done' else 'training from the start'}")
        return decision, None
    if not env.is_main:
        tracking.configure(settings)  # after rank 0 has, so the experiment exists
        state = checkpoint.load(decision.run_id, slot)  # the file rank 0 chose, should the other one be newer by now
    echo(f"{decision.reason} from its checkpoint at step {state['step']} ({checkpoint.FOLDER}/{slot})")
    return decision, state


def _train(settings: Settings, config: TrainConfig, dataset_hash: str | None, env: Distributed, echo, resume: bool = False,
           resume_key: str | None = None, parent_run_id: str | None = None, progress: Progress | None = None,
           keep_model: bool = True) -> str | None:
    folder = dataset.resolve(settings.datasets_dir, dataset_hash)
    manifest = dataset.manifest_of(folder)
    examples = _training_examples(folder, config)
    local_batch = config.batch_size // env.world_size
    if local_batch < 1 or config.batch_size % env.world_size:
        raise MlopsError(f"batch size {config.batch_size} does not split over {env.world_size} processes; use a multiple")
    if local_batch % config.grad_accum:
        raise MlopsError(f"each process's batch of {local_batch} does not split into {config.grad_accum} chunks "
                         f"(--grad-accum); use a divisor of it")
    steps_per_epoch = len(examples) // config.batch_size
    if steps_per_epoch == 0:
        raise MlopsError(f"{len(examples)} training pairs are fewer than one batch of {config.batch_size}; lower --batch-size")
    total = min(steps_per_epoch * config.epochs, config.max_steps or math.inf)
    warmup = int(total * config.warmup_ratio)

    decision, state = _resumed(settings, config, manifest["hash"], env, resume_key, echo) if resume else (None, None)
    if decision and decision.action == "done":
        return decision.run_id if env.is_main else None
    device = torch.device(f"cuda:{env.local_rank}" if torch.cuda.is_available() else "cpu")
    used = precision.resolve(config.precision, device)
    torch.manual_seed(config.seed)
    encoder = Encoder(base_model_path(), device=str(device))
    encoder.model.train()
    if getattr(encoder.model, "pooler", None) is not None:
        # Mean pooling never uses BERT's pooler: frozen, it has no gradients for DDP to wait for and no optimiser state.
        encoder.model.pooler.requires_grad_(False)
    parallel = Parallel(encoder.model, config.strategy, env.world_size)
    optimizer = torch.optim.AdamW(parallel.module.parameters(), lr=config.learning_rate)  # over the shards under FSDP
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_at(step, total, warmup))
    scaler = parallel.grad_scaler(used)
    step, slot, spent = 0, None, 0.0
    if state:
        parallel.load(optimizer, state["model"], state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        step, slot, spent = state["step"], state["file"], state["seconds"]  # the next checkpoint goes to the other file
        rng.restore(state["rng"][env.rank])

    run, logged = None, set()
    if env.is_main:
        client = tracking.configure(settings)
        if state:
            run = mlflow.start_run(run_id=decision.run_id)
            checkpoint.claim(client, client.get_run(decision.run_id), step)
            # the killed attempt may have logged losses past its last checkpoint: each step's loss is logged once
            logged = {m.step for m in client.get_metric_history(decision.run_id, "train_loss")}
        else:
            run = mlflow.start_run(tags={tracking.TAG_STAGE: "train", tracking.TAG_DATASET: manifest["hash"],
                                         tracking.TAG_GIT_SHA: tracking.git_sha(), **checkpoint.run_tags(config, resume_key),
                                         **({tracking.TAG_PARENT: parent_run_id} if parent_run_id else {})})
            mlflow.log_params({**config.model_dump(), "world_size": env.world_size, "dataset_hash": manifest["hash"],
                               "backend": dist.get_backend() if env.world_size > 1 else "none",
                               "strategy_used": parallel.strategy, "train_pairs": len(examples),
                               "total_steps": total, "base_model": "all-MiniLM-L6-v2", "precision_used": used})
            tracking.log_config(run.info.run_id, "train", config)
        echo(f"training on {len(examples)} pairs, {total} steps of {config.batch_size} ({env.world_size} process(es)); MLflow run {run.info.run_id}")

    try:
        started, first = time.perf_counter(), step
        pending = []
        for epoch in range(config.epochs):
            order = list(range(len(examples)))
            random.Random(config.seed + epoch).shuffle(order)  # same order on every rank; each takes its slice
            for n, batch_start in enumerate(range(0, steps_per_epoch * config.batch_size, config.batch_size)):
                if step >= total:
                    break
                if epoch * steps_per_epoch + n < step:  # done before the checkpoint this run resumed from
                    continue
                mine = order[batch_start + env.rank * local_batch : batch_start + (env.rank + 1) * local_batch]
                batch = [examples[i] for i in mine]
                chunk = local_batch // config.grad_accum
                loss = grad_cache.backward(
                    [batch[i : i + chunk] for i in range(0, local_batch, chunk)],
                    functools.partial(_embed_chunk, encoder, parallel.module, config=config, used=used, device=device),
                    functools.partial(_batch_loss, batch=batch, config=config, env=env),
                    scale=scaler.scale, no_sync=parallel.no_sync)
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(parallel.module.parameters(), 1.0)  # of the whole model, shards included
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                step += 1
                if env.world_size > 1:  # each process has its questions' loss; the run logs the whole batch's
                    dist.all_reduce(loss)
                    loss /= env.world_size
                pending.append((step, loss.item(), spent + time.perf_counter() - started))
                checkpointing = bool(config.checkpoint_every) and step % config.checkpoint_every == 0 and step < total
                if env.is_main and (step % LOG_EVERY == 0 or step == total or checkpointing):  # a checkpoint's losses are logged
                    for s, value, at in pending:  # the loss, and when it was reached: the training-time study's curves
                        if s not in logged:
                            mlflow.log_metrics({"train_loss": value, "train_elapsed_seconds": at}, step=s)
                    pending.clear()
                    elapsed = time.perf_counter() - started
                    left = elapsed / (step - first) * (total - step)
                    echo(f"  step {step}/{total}  loss {loss.item():.4f}  {elapsed:.0f}s elapsed, ~{left:.0f}s left")
                if progress and env.is_main and (step % progress.every == 0 or step == total):
                    encoder.model.eval()  # no dropout while it is scored; no generator drawn from either
                    progress.call(step, encoder, step == total)
                    encoder.model.train()
                if checkpointing:
                    slot = checkpoint.save(step, spent + time.perf_counter() - started, parallel, optimizer, scheduler,
                                           scaler, env.rank, env.world_size, slot)
                    echo(f"  checkpoint at step {step} logged to the run ({checkpoint.FOLDER}/{slot})")
        seconds = spent + time.perf_counter() - started  # every attempt's training up to its last checkpoint, then this one's
        peak = _peak_memory_mb(device)  # training's, before the whole model is gathered to be saved
        weights = parallel.weights()  # gathered from every process's shard under FSDP
        if not env.is_main:
            return None
        mlflow.log_metrics({"train_seconds": seconds, "train_pairs_per_second": step * config.batch_size / seconds,
                            "peak_memory_mb": peak})
        if not keep_model:
            mlflow.end_run()
            return run.info.run_id
        out = settings.models_dir / run.info.run_id
        shutil.rmtree(out, ignore_errors=True)
        trained = Encoder(base_model_path(), device="cpu")
        trained.model.load_state_dict(weights)
        trained.save(out / tracking.MODEL_ARTIFACT)
        mlflow.log_artifacts(str(out / tracking.MODEL_ARTIFACT), tracking.MODEL_ARTIFACT)
        mlflow.log_artifacts(str(folder), tracking.DATASET_ARTIFACT)  # evaluate and export read the data from here
        shutil.rmtree(out, ignore_errors=True)  # MLflow holds the model now
        mlflow.end_run()
        if config.checkpoint_every and (failed := checkpoint.delete(client, run.info.run_id)):
            echo(f"warning: run {run.info.run_id}'s checkpoints were not deleted ({failed}); they only take space")
        echo(f"trained in {seconds:.0f}s; model logged to run {run.info.run_id}")
        return run.info.run_id
    except BaseException as exc:
        if run is not None:  # stopped (Ctrl-C; a search's scheduler ends a trial by SystemExit) or failed
            mlflow.end_run(status="KILLED" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "FAILED")
        raise
