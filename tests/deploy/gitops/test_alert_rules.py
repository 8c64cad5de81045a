"""The chart's alert rules, checked and unit-tested by the real promtool (Debian's `prometheus` package, installed by
`make system-deps`): prometheus/alerts_test.yaml says when each alert fires, with which labels and text."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from support.paths import ROOT

ALERTS = ROOT / "gitops" / "charts" / "transformers-qa" / "files" / "prometheus" / "alerts.yaml"
UNIT_TESTS = Path(__file__).parent / "prometheus" / "alerts_test.yaml"


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed: run `make system-deps` (Debian package prometheus)")
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_rules_file_is_valid():
    done = promtool("check", "rules", str(ALERTS), cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 4 rules found" in done.stdout


def test_each_alert_fires_when_and_as_its_unit_tests_say():
    done = promtool("test", "rules", UNIT_TESTS.name, cwd=UNIT_TESTS.parent)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_weakened_rule_fails_its_unit_test(tmp_path: Path):
    """The unit tests can fail: with the thumbs-down threshold at 70%, version 2's 67% no longer pages."""
    rules = ALERTS.read_text(encoding="utf-8")
    assert ") > 0.4\n" in rules
    (tmp_path / "alerts.yaml").write_text(rules.replace(") > 0.4\n", ") > 0.7\n"), encoding="utf-8")
    tests = UNIT_TESTS.read_text(encoding="utf-8").replace("../../../../gitops/charts/transformers-qa/files/prometheus/", "")
    (tmp_path / "alerts_test.yaml").write_text(tests, encoding="utf-8")
    done = promtool("test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert done.returncode != 0
    assert "alertname: QaThumbsDownRatioHigh, time: 1h" in done.stdout + done.stderr
