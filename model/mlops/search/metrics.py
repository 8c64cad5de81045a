"""Retrieval metrics: recall@k and MRR, overall and per slice."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

KS = (1, 5, 10)


def score_rankings(ranked: Sequence[Sequence[str]], expected: Sequence[set[str]]) -> dict[str, float]:
    """recall@k = share of questions with a right symbol in the top k; MRR over the top max(KS)."""
    n = len(ranked)
    if n == 0:
        return {**{f"recall_at_{k}": 0.0 for k in KS}, "mrr": 0.0, "count": 0}
    first_hit = []
    for symbols, right in zip(ranked, expected, strict=True):
        rank = next((i for i, s in enumerate(symbols[: max(KS)], start=1) if s in right), None)
        first_hit.append(rank)
    result = {f"recall_at_{k}": sum(r is not None and r <= k for r in first_hit) / n for k in KS}
    result["mrr"] = sum(1.0 / r for r in first_hit if r is not None) / n
    result["count"] = n
    return result


def score_by_slice(ranked: Sequence[Sequence[str]], expected: Sequence[set[str]], slices: Sequence[str]) -> dict:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, name in enumerate(slices):
        groups[name].append(i)
    return {
        "overall": score_rankings(ranked, expected),
        "slices": {
            name: score_rankings([ranked[i] for i in idx], [expected[i] for i in idx]) for name, idx in sorted(groups.items())
        },
    }
