"""GitHub Actions workflows validate against the published workflow schema, and every action is pinned to a commit."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

WORKFLOWS = sorted((Path(__file__).resolve().parents[1] / ".github" / "workflows").glob("*.yaml"))
CHECK_JSONSCHEMA = str(Path(sys.executable).with_name("check-jsonschema"))


def test_there_are_workflows():
    assert WORKFLOWS


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_the_github_schema(workflow: Path):
    result = subprocess.run([CHECK_JSONSCHEMA, "--builtin-schema", "vendor.github-workflows", str(workflow)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_opens_with_a_comment_and_pins_every_action(workflow: Path):
    text = workflow.read_text()
    assert text.startswith("# "), "each workflow opens with a comment on what it does and when"
    steps = [step for job in yaml.safe_load(text)["jobs"].values() for step in job.get("steps", [])]
    for uses in [s["uses"] for s in steps if "uses" in s]:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), f"{uses} is not pinned to a commit"
