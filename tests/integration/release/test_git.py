"""GitRepo's one-line errors carry git's own reason, not the advice printed after it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlops.core.errors import MlopsError
from mlops.release.git import GitRepo


def test_a_failed_pull_names_gits_reason(tmp_path: Path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "init", "--quiet", "-b", "main", str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "remote", "add", "origin", str(tmp_path / "missing.git")], check=True)
    with pytest.raises(MlopsError) as failed:
        GitRepo(clone).run("pull", "origin", "main")
    # git ends with "Please make sure you have the correct access rights / and the repository exists."
    assert str(failed.value).startswith("git pull failed: fatal: ") and "missing.git" in str(failed.value)
