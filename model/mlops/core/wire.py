"""The Triton model's wire contract, in one place: the model config declares it, the clients and the python
backend speak it.

A request carries ``QUESTION`` (one string per row) and optionally ``TOP_K`` (one int32 per row); the response's
``ANSWERS`` holds, per row, the JSON-encoded reply to that question: ``{"answers": [...], "abstained": bool,
"reason": str | null, "confidence": float | null}`` (``reply``). A version exported before abstention existed
sends the bare list of answers; ``read_reply`` reads both, so such a version can still be served and rolled back to.
"""

from __future__ import annotations

import json

QUESTION = "QUESTION"
TOP_K = "TOP_K"
ANSWERS = "ANSWERS"


def reply(answers: list[dict], confidence: float | None, abstain_reason: str | None = None) -> dict:
    """The reply to one question: ``answers`` empty and the reason given when the model abstains."""
    return {"answers": answers, "abstained": abstain_reason is not None, "reason": abstain_reason, "confidence": confidence}


def read_reply(raw: bytes | str) -> dict:
    """One row of ``ANSWERS`` as a reply."""
    data = json.loads(raw)
    return reply(data, None) if isinstance(data, list) else data
