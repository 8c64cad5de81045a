"""Dockerfiles (built in CI, not here: no Docker engine): hadolint-clean, pinned bases, non-root, nothing secret in context."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted((ROOT / "images").glob("*/Dockerfile"))
HADOLINT = str(Path(sys.executable).with_name("hadolint"))


def test_each_image_has_a_dockerfile():
    assert {p.parent.name for p in DOCKERFILES} == {"api", "trainer", "triton"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_is_clean(dockerfile: Path):
    result = subprocess.run([HADOLINT, "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_pinned_base_non_root_user_and_a_leading_comment(dockerfile: Path):
    text = dockerfile.read_text()
    assert text.startswith("# ")
    for image in re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE):
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest", f"{image} is not pinned"
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must end as a non-root user"
    assert not re.search(r"(?i)(password|secret|token)\s*=", text)


def test_build_context_leaves_out_local_state_and_secrets():
    rules = (ROOT / ".dockerignore").read_text().splitlines()
    effective = [r for r in rules if r and not r.startswith("#")]
    assert effective[0] == "*", "deny everything, then allow what images need"
    allowed = {r[1:] for r in effective if r.startswith("!")}
    assert allowed >= {"model/", "requirements.lock", "pyproject.toml"}
    assert not any(a.startswith((".mlops", ".venv", ".git", "gitops")) for a in allowed)
