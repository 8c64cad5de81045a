"""What a training run is given (logged with the run as ``config/train.json`` and read back typed by evaluate), what
a hyperparameter search is given, and where the training-time study reports. Torch-free, so the CLI shows these
defaults without loading torch."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# What `mlops train-study` writes under the reports folder and `mlops results-page` reads.
STUDY_REPORT, STUDY_PLOT = "train-study.json", "train-study.png"


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(1, ge=1, le=50)
    batch_size: int = Field(32, ge=2, le=1024, description="global batch (split across processes)")
    learning_rate: float = Field(5e-5, gt=0, le=1e-2)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    scale: float = Field(20.0, gt=0, description="inverse temperature of the similarity logits")
    max_steps: int | None = Field(None, ge=1, description="stop early after this many steps (smoke runs)")
    checkpoint_every: int | None = Field(None, ge=1, description="steps between checkpoints in the run's artifacts (None: none)")
    seed: int = 13
    precision: Literal["fp32", "bf16", "fp16", "auto"] = Field(
        "fp32", description="autocast dtype of the forward passes (fp16 needs a GPU; 'auto': bf16 on a GPU that has it, "
                            "else fp16, fp32 on CPU)")
    grad_accum: int = Field(1, ge=1, le=64, description="chunks each process embeds its batch in (gradient caching: the "
                                                        "loss still scores every question against the whole batch)")
    strategy: Literal["ddp", "fsdp"] = Field(
        "ddp", description="how several processes share the model: each a whole copy (ddp) or a shard of the weights, "
                           "gradients and optimiser state (fsdp); one process uses neither")
    rules: tuple[str, ...] = Field(("how", "summary", "argument", "labelled", "feedback", "review"),
                                   description="question rules to train on ('what' only teaches names; 'labelled': the written set;"
                                               " 'feedback': users' thumbs-up; 'review': thumbs-down an annotator answered)")
    passage_tokens: int = Field(48, ge=16, le=256, description="passage truncation while training (serving uses 128)")
    shuffle_labels: bool = Field(False, description="pair questions with random passages: a deliberately broken model")


class TuneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trials: int = Field(8, ge=1, le=200, description="configurations sampled")
    max_steps: int = Field(200, ge=2, le=100_000, description="training steps of a trial that is never stopped")
    evaluate_every: int = Field(50, ge=1, description="steps between a trial's validation scores (ASHA's rungs)")
    learning_rate: tuple[float, float] = (1e-5, 2e-4)  # sampled log-uniformly
    batch_sizes: tuple[int, ...] = (16, 32, 64)
    epochs: tuple[int, ...] = (1, 2, 3)
    scale: tuple[float, float] = (10.0, 40.0)  # the loss's inverse temperature, sampled uniformly
    seed: int = 13
