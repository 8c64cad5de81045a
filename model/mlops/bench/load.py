"""A closed-loop load generator: N workers, each sending its next question as soon as the last is answered.

Bounded in requests (not open-ended): every level sends the same fixed number of questions, cycling
through the set. Latencies are measured per request; QPS is requests answered / wall time.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel


class LoadResult(BaseModel):
    concurrency: int
    requests: int
    failures: int
    qps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


@dataclass
class Samples:
    """What one closed-loop run saw: each answered request's latency (s), the failures, and the wall time (s)."""

    latencies: list[float]
    failures: int
    wall_s: float


async def sample(send: Callable[[str], Awaitable[None]], questions: Sequence[str], concurrency: int, total: int) -> Samples:
    """Run ``total`` calls of ``send(question)`` with ``concurrency`` in flight; a raised exception is a failure."""
    feed = itertools.islice(itertools.cycle(questions), total)
    latencies: list[float] = []
    failures = 0

    async def worker() -> None:
        nonlocal failures
        for question in feed:  # shared iterator: workers take the next question in turn
            started = time.perf_counter()
            try:
                await send(question)
            except Exception:  # noqa: BLE001  a benchmark counts failures, whatever they are
                failures += 1
                continue
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Samples(latencies, failures, time.perf_counter() - started)


def summarise(concurrency: int, *runs: Samples) -> LoadResult:
    """One result over runs at the same concurrency: answered requests / their summed wall time, and the latencies'
    percentiles over all of them."""
    latencies = [latency for run in runs for latency in run.latencies]
    ms = np.array(latencies or [float("nan")]) * 1000
    wall = sum(run.wall_s for run in runs)
    return LoadResult(concurrency=concurrency, requests=len(latencies), failures=sum(run.failures for run in runs),
                      qps=round(len(latencies) / wall, 1), p50_ms=round(float(np.percentile(ms, 50)), 1),
                      p95_ms=round(float(np.percentile(ms, 95)), 1), p99_ms=round(float(np.percentile(ms, 99)), 1))


async def drive(send: Callable[[str], Awaitable[None]], questions: Sequence[str], concurrency: int, total: int) -> LoadResult:
    """``sample``, summarised."""
    return summarise(concurrency, await sample(send, questions, concurrency, total))
