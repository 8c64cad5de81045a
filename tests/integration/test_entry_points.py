"""The light entry points (the CLI's release commands, the API pod) start without torch or transformers: each in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("modules", [
    ["mlops.cli", "mlops.release.promote", "mlops.release.wait"],   # `mlops promote`, `mlops rollback`, `mlops gitops wait`
    ["mlops.cli", "mlops.release.smoke"],                           # `mlops smoke`
    ["mlops.serving.serve", "mlops.serving.api"],                   # the API pod
])
def test_light_entry_points_never_import_torch(modules: list[str]):
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
