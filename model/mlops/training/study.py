"""`mlops train-study`: what training costs here, one process against several, DDP against FSDP, by batch size.

Each case is a real `mlops train` (under torchrun when it has several processes) of the same short length, nested
in MLflow under the study's run. From each run's per-step loss and elapsed time the study takes:

- steps/s and pairs/s after the first step (which also allocates and, on a GPU, compiles);
- the seconds to a target loss: the highest loss any case of that batch size ends at, so every one of them gets
  there, on a 10-step moving average; the time is the step from which the average stays at or below it (a short
  run's loss is noisy: the first time it dips there says little). Cases of one global batch see the same data in
  the same order and the same gradients whatever their strategy (tests/integration/training/test_strategy.py);
  only each process's dropout masks differ with the process count, so within a batch size this compares speed on
  nearly equal terms. Losses of different batch sizes do not compare (a bigger batch scores each question against
  more negatives);
- the peak memory of rank 0 while it trains (its peak resident set on CPU, libraries and data included;
  allocations on a GPU).

It writes ``<reports>/train-study.json`` and ``train-study.png``, logs both to the study's run, and
`mlops results-page` shows them.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import matplotlib
import mlflow
from pydantic import BaseModel, ConfigDict, Field

from mlops.core.errors import MlopsError
from mlops.core.files import write_atomic
from mlops.core.settings import Settings
from mlops.data import dataset
from mlops.lifecycle import tracking
from mlops.training.config import STUDY_PLOT as PLOT
from mlops.training.config import STUDY_REPORT as REPORT

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SMOOTHING = 10  # steps in the moving average the target loss is read on


class StudyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    processes: tuple[int, ...] = Field((1, 2), description="process counts to compare (a GPU each on a GPU machine)")
    strategies: tuple[str, ...] = Field(("ddp", "fsdp"), description="strategies of the cases with several processes")
    batch_sizes: tuple[int, ...] = Field((16, 32), description="global batch sizes")
    steps: int = Field(30, ge=SMOOTHING + 1, le=1000, description="training steps of every case")
    seed: int = 13


class Case(NamedTuple):
    processes: int
    strategy: str  # "none" with one process
    batch_size: int

    @property
    def label(self) -> str:
        return f"{self.processes}p {self.strategy} b{self.batch_size}"


def cases(config: StudyConfig) -> list[Case]:
    """Every case of the study: per batch size, one process, then each strategy at each larger process count."""
    for strategy in config.strategies:
        if strategy not in ("ddp", "fsdp"):
            raise MlopsError(f"--strategies: unknown strategy {strategy!r}; use ddp and/or fsdp")
    for n in config.processes:
        if n < 1:
            raise MlopsError(f"--processes: {n} is not a process count; use 1 or more")
    for batch in config.batch_sizes:
        if bad := [n for n in config.processes if batch % n]:
            raise MlopsError(f"--batch-sizes: a batch of {batch} does not split over {bad[0]} processes; use multiples")
    return [Case(n, strategy, batch) for batch in config.batch_sizes for n in sorted(set(config.processes))
            for strategy in (("none",) if n == 1 else config.strategies)]


def moving_average(values: list[float], window: int = SMOOTHING) -> list[float]:
    return [sum(values[max(0, i + 1 - window) : i + 1]) / (i + 1 - max(0, i + 1 - window)) for i in range(len(values))]


def measure(losses: list[float], elapsed: list[float], batch_size: int) -> dict:
    """Speed and end loss of one case from its per-step loss and elapsed seconds (steps 1..n, in order)."""
    steps = len(elapsed)
    rate = (steps - 1) / (elapsed[-1] - elapsed[0])  # after the first step
    return {"steps_per_second": rate, "pairs_per_second": rate * batch_size, "final_loss": moving_average(losses)[-1]}


def seconds_to(target: float, losses: list[float], elapsed: list[float]) -> float | None:
    """When the moving-average loss reaches ``target`` to stay (at or below it from then on to the last step); None
    when it ends above it."""
    settled = None
    for loss, t in zip(reversed(moving_average(losses)), reversed(elapsed), strict=True):
        if loss > target + 1e-12:
            break
        settled = t
    return settled


def machine() -> dict:
    """What the figures were measured on."""
    import torch

    info = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in info.read_text().splitlines() if line.startswith("model name")] if info.exists() else []
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"cpu": names[0] if names else platform.machine(), "cores": os.cpu_count(), "gpus": gpus, "torch": torch.__version__,
            "host": platform.node()}


def _train_case(case: Case, config: StudyConfig, dataset_hash: str, parent: str) -> tuple[str, float]:
    """One case as the user would run it (a fresh `mlops train`); its run id and wall seconds."""
    command = [sys.executable, "-m", "mlops", "train", "--dataset", dataset_hash, "--nproc-per-node", str(case.processes),
               "--batch-size", str(case.batch_size), "--max-steps", str(config.steps), "--epochs", "50",
               "--seed", str(config.seed), "--parent-run", parent]
    if case.processes > 1:
        command += ["--strategy", case.strategy]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        raise MlopsError(f"the study's case {case.label} failed: {errors[-1][7:] if errors else done.stderr.strip()[-300:]}")
    return done.stdout.strip().splitlines()[-1], time.perf_counter() - started


def _history(client, run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def study(settings: Settings, config: StudyConfig, dataset_hash: str | None = None, echo=print) -> Path:
    """Run every case, write and log the report and plot; returns the report's path."""
    planned = cases(config)
    folder = dataset.resolve(settings.datasets_dir, dataset_hash)
    dataset_hash = dataset.manifest_of(folder)["hash"]
    client = tracking.configure(settings)
    where = machine()
    with mlflow.start_run(tags={tracking.TAG_STAGE: "train-study", tracking.TAG_DATASET: dataset_hash,
                                tracking.TAG_GIT_SHA: tracking.git_sha()}) as parent:
        mlflow.log_params({**config.model_dump(), "cpu": where["cpu"], "cores": where["cores"], "gpus": ",".join(where["gpus"]) or "none"})
        echo(f"training-time study: {len(planned)} cases of {config.steps} steps on {where['cores']} cores"
             f"{', ' + ', '.join(where['gpus']) if where['gpus'] else ''}; MLflow run {parent.info.run_id}")
        rows, curves = [], {}
        for n, case in enumerate(planned, 1):
            echo(f"  [{n}/{len(planned)}] {case.processes} process(es), {case.strategy}, batch {case.batch_size} ...")
            run_id, wall = _train_case(case, config, dataset_hash, parent.info.run_id)
            losses, elapsed = _history(client, run_id, "train_loss"), _history(client, run_id, "train_elapsed_seconds")
            metrics = client.get_run(run_id).data.metrics
            row = {**case._asdict(), "label": case.label, "run_id": run_id, "wall_seconds": wall,
                   "peak_memory_mb": metrics["peak_memory_mb"], **measure(losses, elapsed, case.batch_size)}
            rows.append(row)
            curves[case.label] = (losses, elapsed)
            echo(f"      {row['steps_per_second']:.2f} steps/s, {row['pairs_per_second']:.1f} pairs/s, "
                 f"peak {row['peak_memory_mb']:.0f} MiB, {wall:.0f}s in all")
        _compare(rows, curves)
        report = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "machine": where,
                  "dataset_hash": dataset_hash, "study_run_id": parent.info.run_id, "config": config.model_dump(),
                  "smoothing": SMOOTHING,
                  "cases": rows, "curves": {label: {"loss": moving_average(loss), "seconds": at} for label, (loss, at) in curves.items()}}
        settings.reports_dir.mkdir(parents=True, exist_ok=True)
        out = settings.reports_dir / REPORT
        _plot(report, settings.reports_dir / PLOT)
        write_atomic(out, json.dumps(report, indent=2))
        mlflow.log_artifact(str(out), "study")
        mlflow.log_artifact(str(settings.reports_dir / PLOT), "study")
    echo(f"wrote {out} and {settings.reports_dir / PLOT}")
    return out


def _compare(rows: list[dict], curves: dict) -> None:
    """Each case's seconds to its batch size's target loss, and its speed against one process of that batch."""
    for batch in {r["batch_size"] for r in rows}:
        group = [r for r in rows if r["batch_size"] == batch]
        target = max(r["final_loss"] for r in group)
        alone = next((r for r in group if r["processes"] == 1), None)
        for r in group:
            r["target_loss"] = target
            r["seconds_to_target"] = seconds_to(target, *curves[r["label"]])
            r["speedup_vs_one_process"] = r["steps_per_second"] / alone["steps_per_second"] if alone else None


def _plot(report: dict, path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    for row in report["cases"]:
        curve = report["curves"][row["label"]]
        style = {"none": "-", "ddp": "--", "fsdp": ":"}[row["strategy"]]
        left.plot(curve["seconds"], curve["loss"], style, label=row["label"])
    left.set(xlabel="training seconds", ylabel=f"loss ({SMOOTHING}-step moving average)", title="Loss against time")
    left.legend(fontsize=8)
    labels = [r["label"] for r in report["cases"]]
    bars = right.bar(labels, [r["pairs_per_second"] for r in report["cases"]])
    right.bar_label(bars, labels=[f"{r['peak_memory_mb']:.0f} MiB" for r in report["cases"]], fontsize=7)
    right.set(ylabel="training pairs / s", title="Throughput (bar labels: rank 0's peak memory)")
    right.tick_params(axis="x", rotation=30, labelsize=8)
    where = report["machine"]
    fig.suptitle(f"Training-time study, {report['date'][:10]}: {where['cores']} cores ({where['cpu']})"
                 f"{', ' + ', '.join(where['gpus']) if where['gpus'] else ''}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
