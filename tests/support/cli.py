"""The mlops command as a subprocess, and the one-line error it ends with on bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MLOPS = str(Path(sys.executable).with_name("mlops"))


def run(*args: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    environment = {**os.environ, "MLOPS_HOME": str(home)}
    environment.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([MLOPS, *args], capture_output=True, text=True, env=environment, timeout=timeout)


def assert_clean_error(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
