"""The mlops command as a user meets it (a subprocess, or in process for the many bad-input cases), and the one-line
error it ends with on bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from pathlib import Path

MLOPS = str(Path(sys.executable).with_name("mlops"))


def run(*args: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    environment = {**os.environ, "MLOPS_HOME": str(home)}
    environment.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([MLOPS, *args], capture_output=True, text=True, env=environment, timeout=timeout)


def invoke(*args: str, home: Path) -> subprocess.CompletedProcess:
    """``run`` in this process (the same Typer app and error handling, without an interpreter start that imports torch
    and MLflow each time); an exception the app lets escape is its traceback on stderr, as the real command shows it."""
    from typer.testing import CliRunner

    from mlops.cli import app
    from mlops.core.results import stdout_holds_only_results

    with stdout_holds_only_results():  # as main() runs the app: what a failed command recorded is dropped with it
        done = CliRunner().invoke(app, list(args), env={"MLOPS_HOME": str(home), "MLFLOW_TRACKING_URI": None})
    stderr = done.stderr
    if done.exception is not None and not isinstance(done.exception, SystemExit):
        stderr += "Traceback (most recent call last):\n" + "".join(traceback.format_exception(done.exception))
    return subprocess.CompletedProcess(["mlops", *args], done.exit_code, done.stdout, stderr)


def assert_clean_error(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
