"""Servers run as child processes in their own process group, so that stopping one also stops what it started
(Triton's backend stubs, uvicorn's or gunicorn's workers)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path


def start_group(command: Sequence[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """Start ``command`` as the leader of a new process group, stdout and stderr into ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(list(command), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)


def stop_group(proc: subprocess.Popen, grace_s: float = 10) -> None:
    """SIGTERM the leader (it stops its own children, as Triton does its stubs), wait up to ``grace_s``, then SIGKILL
    whatever is left in the group; safe once it has exited."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # orphans outlive their leader: a hung worker, a stub
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already
    proc.wait()
