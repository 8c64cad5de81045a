"""`mlops review` as an annotator meets it: the installed command, answers typed on stdin, decisions in the feedback
database with who and when; bad input ends in one clear line."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from mlops.serving.feedback import FeedbackStore
from support.cli import MLOPS, assert_clean_error, invoke

QUESTIONS = [  # (question, the symbol users rated down)
    ("how do I make my batches the same length", "minilib.training.Trainer"),
    ("how do I make my batches the same length", "minilib.generation.utils.generate"),
    ("my run forgets everything after a crash", "minilib.training.set_seed"),
    ("what should I cook tonight", "minilib.pipelines.pipeline"),
    ("print fewer messages please", "minilib.training.Trainer"),
    ("make my runs repeatable", "minilib.training.Trainer"),
]


def review(home: Path, url: str, typed: str, *options: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "MLOPS_HOME": str(home)}
    return subprocess.run([MLOPS, "review", "--feedback", url, *options], input=typed, capture_output=True, text=True,
                          env=environment, timeout=120)


def test_an_annotator_picks_searches_marks_off_topic_skips_and_comes_back_to_what_is_left(tmp_path: Path, mini_package: Path):
    home, url = tmp_path / "home", f"sqlite:///{tmp_path / 'feedback.db'}"
    assert invoke("data", "--source", str(mini_package), home=home).returncode == 0
    store = FeedbackStore(url)
    ids = [store.add(question=q, symbol=s, rating="down", model_version="1") for q, s in QUESTIONS]
    store.add(question="a rule's verdict", symbol="minilib.training.Trainer", rating="down", model_version="1", comment="mlops simulate")
    store.add(question="print fewer messages please", symbol="minilib.logging.set_verbosity", rating="up", model_version="1")

    # The most rated-down question first; a wrong entry is explained and asked again; /words searches again; a name
    # may be a unique ending, pasted with its signature; choosing a held-out symbol is stored, and said to teach nothing.
    typed = "nonsense\n/padding\n1\nTrainer.resume(self, *args, **kwargs)\no\ns\nminilib.training.set_seed\n"
    done = review(home, url, typed, "--reviewer", "ana")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"reviewer": "ana", "symbol": 3, "off_topic": 1, "skipped": 1, "left": 1}
    lines = done.stderr.splitlines()
    assert lines[0].startswith("5 questions rated down wait for review")
    assert "[1/5] 'how do I make my batches the same length': rated down 2 times (version 1)" in done.stderr
    assert "rejected: minilib.training.Trainer, minilib.generation.utils.generate" in done.stderr
    assert "'nonsense' is neither a number from the list nor one symbol of this corpus" in done.stderr
    padding = re.search(r"search 'padding':\n    1\. (\S+?)[ (]", done.stderr).group(1)
    assert padding == "minilib.data.collators.PaddingCollator"
    assert "set_seed is held out for validation, so this question is not trained on" in done.stderr
    reviews = {r["id"]: r["review"] for r in store.export()}
    assert [(reviews[i] or {}).get("symbol") for i in ids] == [padding, padding, "minilib.training.Trainer.resume", None, None,
                                                                "minilib.training.set_seed"]
    assert reviews[ids[3]]["decision"] == "off-topic" and reviews[ids[4]] is None  # skipped: still in the queue
    assert {reviews[i]["reviewer"] for i in ids if reviews[i]} == {"ana"}

    # Next time the skipped question waits, and one users rated down again shows its earlier decision; input that
    # ends (Ctrl-D) stops the session, nothing decided.
    store.add(question="my run forgets everything after a crash", symbol="minilib.training.Trainer.resume", rating="down", model_version="2")
    again = review(home, url, "s\n", "--reviewer", "bo")
    assert again.returncode == 0 and json.loads(again.stdout) == {"reviewer": "bo", "symbol": 0, "off_topic": 0, "skipped": 1, "left": 2}
    assert "[1/2] 'print fewer messages please'" in again.stderr and "[2/2] 'my run forgets everything after a crash'" in again.stderr
    assert "reviewed before: minilib.training.Trainer.resume by ana at " in again.stderr
    store.close()


@pytest.mark.parametrize(("options", "message"), [
    (["--feedback", "feedback.jsonl"], "--feedback 'feedback.jsonl' is not a database URL: reviews are stored beside the ratings"),
    (["--feedback", "sqlite:///{tmp}/f.db", "--reviewer", " "], "--reviewer ' ' is empty or over 200 characters: name who reviews"),
    (["--feedback", "sqlite:///{tmp}/f.db", "--reviewer", "ana", "--dataset", "abc"], "unknown dataset 'abc'"),
    (["--feedback", "postgresql://qa@127.0.0.1:1/none", "--reviewer", "ana"],
     "feedback database postgresql+psycopg://qa@127.0.0.1:1/none is unreachable"),
    (["--feedback", "sqlite:///{tmp}/f.db", "--limit", "0"], "--limit must be at least 1, got 0"),
])
def test_bad_input_ends_in_one_clear_line(tmp_path: Path, mini_package: Path, options: list[str], message: str):
    home = tmp_path / "home"
    assert invoke("data", "--source", str(mini_package), home=home).returncode == 0
    assert_clean_error(invoke("review", *[o.format(tmp=tmp_path) for o in options], home=home), message)
