"""A command's stdout holds its result and nothing else.

Argo passes a step's whole stdout on as ``outputs.result`` and scripts read it with ``$(mlops ...)``,
yet libraries write there on their own (MLflow prints "View run ..." lines when a run against a tracking
server ends) and so do child processes (torchrun and its workers). So while a command runs, file
descriptor 1 points at stderr, for this process and every process it starts; what the command records
with :func:`result` is written to the real stdout when it ends.

A command that re-launches itself (``mlops train`` under torchrun) sets ``MLOPS_RESULT_FILE`` for the
child: the child's result goes to that file, and the parent reports it as its own.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RESULT_FILE = "MLOPS_RESULT_FILE"

_recorded: list[str] = []


def result(text: str, end: str = "\n") -> None:
    """Record (part of) the command's result; it is printed on stdout when the command ends."""
    _recorded.append(text + end)


@contextmanager
def stdout_holds_only_results() -> Iterator[None]:
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        text = "".join(_recorded)
        _recorded.clear()
        if text and os.environ.get(RESULT_FILE):
            Path(os.environ[RESULT_FILE]).write_text(text, encoding="utf-8")
        elif text:
            sys.stdout.write(text)
            sys.stdout.flush()
