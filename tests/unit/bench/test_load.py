"""The benchmark's parts that decide its figures: the load generator, the naive server, the profile buckets."""

from __future__ import annotations

import asyncio

from mlops.bench.load import drive


def test_drive_keeps_the_concurrency_counts_failures_and_measures_latency():
    in_flight = peak = 0

    async def send(question: str) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        if question == "bad":
            raise RuntimeError("server error")

    result = asyncio.run(drive(send, ["a", "b", "c", "bad"], concurrency=4, total=40))
    assert peak == 4
    assert (result.requests, result.failures) == (30, 10)
    assert 10 <= result.p50_ms <= result.p95_ms <= result.p99_ms < 200
    # 40 requests of >= 10 ms, 4 at a time: at most 400 per second
    assert 0 < result.qps <= 400


def test_summarise_pools_runs_as_one_level():
    from mlops.bench.load import Samples, summarise

    fast, slow = Samples([0.010] * 90, 0, 1.0), Samples([0.100] * 10, 2, 1.0)
    result = summarise(8, fast, slow)
    # 100 answers in 2 s of wall time; the percentiles over all 100 latencies, not an average of each run's
    assert (result.concurrency, result.requests, result.failures, result.qps) == (8, 100, 2, 50.0)
    assert (result.p50_ms, result.p95_ms) == (10.0, 100.0)
