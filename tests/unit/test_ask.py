"""`mlops ask`'s readable answer view (what the terminal shows without --json), from a reply as the retriever gives it."""

from __future__ import annotations

import io

from rich.console import Console

from mlops.ask import show
from support.package import SET_SEED, SET_SEED_DOCS_URL, SET_SEED_DOCSTRING, SET_SEED_SOURCE_URL

LEAD = "Sets the random seed of python, numpy and torch so that runs are reproducible."


def _reply() -> dict:
    answer = {"symbol": SET_SEED, "kind": "function", "signature": "(seed: int, deterministic: bool=False)", "path": "minilib/training.py",
              "line": 10, "score": 0.82, "text": LEAD + " Call it before ...", "highlight": {"start": 0, "end": len(LEAD)},
              "docstring": SET_SEED_DOCSTRING, "source_url": SET_SEED_SOURCE_URL, "docs_url": SET_SEED_DOCS_URL}
    other = {"symbol": "minilib.training.Trainer", "signature": "()", "path": "minilib/training.py", "line": 1, "score": 0.3,
             "text": "Runs the training loop.", "highlight": None, "docstring": "Runs the training loop.", "source_url": None,
             "docs_url": None}
    return {"answers": [answer, other], "abstained": False, "reason": None, "confidence": 0.8}


def _shown(reply: dict) -> str:
    out = io.StringIO()
    show(reply, "7", Console(file=out, width=120, color_system=None))
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines()) + "\n"


def test_the_view_names_signature_highlight_links_example_and_rendered_docs():
    text = _shown(_reply())
    assert f"1. {SET_SEED}(seed: int, deterministic: bool=False)" in text and "2. minilib.training.Trainer()" in text
    assert LEAD in text and f"source: {SET_SEED_SOURCE_URL}" in text and f"docs: {SET_SEED_DOCS_URL}" in text
    assert "from minilib.training import set_seed\n" in text and ">>>" not in text  # the example, runnable
    assert "Warning" in text and "<Tip" not in text and "[`~" not in text and "seed (int): The seed to set." in text.replace("`", "")
    assert "model version 7" in text


def test_links_stay_whole_on_a_narrow_terminal():
    out = io.StringIO()
    show(_reply(), "7", Console(file=out, width=40, color_system=None))
    assert f"source: {SET_SEED_SOURCE_URL}" in out.getvalue()


def test_a_highlight_that_is_not_the_summary_follows_it():
    reply = _reply()
    answer = reply["answers"][0]
    later = answer["text"].index("Call it")
    answer.update(summary={"start": 0, "end": len(LEAD)}, highlight={"start": later, "end": len(answer["text"])})
    assert f"{LEAD} … Call it before ..." in _shown(reply)


def test_an_abstention_says_why():
    assert _shown({"answers": [], "abstained": True, "reason": "nothing is close", "confidence": 0.1}) == \
        "No confident answer (model version 7): nothing is close\n"
