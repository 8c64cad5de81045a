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


