"""When the deployed system declines to answer: the confidence threshold, chosen on development data, and how
often it refuses what it should answer and answers what it should refuse. Pure: it reads confidences evaluate
computed (``Retriever.confidences``: the best cosine between the question and any chunk of the corpus).

The threshold is the highest that refuses at most ``MAX_DEV_REFUSED`` of each in-domain development set (templated
validation questions, the development natural questions): a wrongly refused question costs a user more than an
answered off-topic one, whose answers a reader sees are unrelated. The margin under the 3% target leaves room for
held-out questions sitting a little lower.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

MAX_DEV_REFUSED = 0.01
TARGET_IN_DOMAIN_REFUSED = 0.03  # on held-out in-domain natural questions
TARGET_OFF_TOPIC_ANSWERED = 0.10  # on the held-out off-topic questions


def choose_threshold(in_domain: dict[str, np.ndarray], max_refused: float = MAX_DEV_REFUSED) -> float:
    """The highest threshold under which (strictly) at most ``max_refused`` of every set's confidences fall."""
    limits = [float(np.sort(c)[int(np.floor(max_refused * len(c)))]) for c in in_domain.values() if len(c)]
    if not limits:
        raise ValueError("no in-domain confidences to choose an abstention threshold from")
    return min(limits)


def refused_share(confidences: np.ndarray, threshold: float) -> float:
    return float(np.mean(confidences < threshold)) if len(confidences) else 0.0


def answered_by_kind(confidences: np.ndarray, kinds: list[str], threshold: float) -> dict:
    """Share of off-topic questions answered (not refused), overall and per kind."""
    counts = Counter(kinds)
    answered = Counter(k for k, c in zip(kinds, confidences, strict=True) if c >= threshold)
    return {"answered": float(np.mean(confidences >= threshold)) if len(kinds) else 0.0, "count": len(kinds),
            "by_kind": {k: answered[k] / n for k, n in sorted(counts.items())}}
