"""The tests' own layout: no test module imports another (shared helpers live in tests/support/), and nothing under
tests/unit starts a server or a subprocess (those tests belong in tests/integration or tests/deploy)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# What starts a process or a server: importing these modules, calling these names, or binding a socket.
PROCESS_MODULES = {"subprocess", "multiprocessing", "http.server", "socketserver", "support.services"}
PROCESS_CALLS = {"Popen", "system", "create_subprocess_exec", "create_subprocess_shell", "spawn", "fork", "bind"}
SERVER_FIXTURES = {"qa_triton", "postgres_url", "champion"}  # session/integration fixtures that run servers


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def layout_problems(tests: Path) -> list[str]:
    problems = []
    for path in sorted(tests.rglob("*.py")):
        relative = path.relative_to(tests).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=relative)
        for line, module in _imported(tree):
            leaf = module.split(".")[-1]
            if leaf.startswith("test_") or module.split(".")[0] == "conftest":
                problems.append(f"{relative}:{line} imports the test module {module} (move what it shares to tests/support/)")
        if not relative.startswith("unit/"):
            continue
        for line, module in _imported(tree):
            if module in PROCESS_MODULES:
                problems.append(f"{relative}:{line} imports {module}: a unit test starts no process or server")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name in PROCESS_CALLS:
                    problems.append(f"{relative}:{node.lineno} calls {name}(): a unit test starts no process or server")
            elif isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                for argument in {a.arg for a in node.args.args} & SERVER_FIXTURES:
                    problems.append(f"{relative}:{node.lineno} {node.name} uses the server fixture {argument}")
    return problems


def test_the_tests_follow_the_layout():
    assert layout_problems(TESTS) == []


def test_the_tiers_are_the_folders():
    assert {p.name for p in TESTS.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))} == {"unit", "integration", "deploy", "support"}
    assert not list(TESTS.glob("test_*.py")), "every test module sits in a tier's folder"


def test_cross_imports_and_unit_servers_are_caught(tmp_path: Path):
    (tmp_path / "unit" / "search").mkdir(parents=True)
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "test_a.py").write_text("from test_b import helper\nimport conftest\nfrom support.gitops import ROOT\n")
    (tmp_path / "unit" / "search" / "test_b.py").write_text(
        "import socket\nimport subprocess\nfrom support.services import ApiProcess\n\n"
        "def test_x(qa_triton):\n    socket.socket().bind(('127.0.0.1', 0))\n    subprocess.run(['true'])\n"
    )
    fine = "import json\nfrom support.package import dedent\n\ndef test_y(tmp_path):\n    json.loads('{}')\n"
    (tmp_path / "unit" / "test_fine.py").write_text(fine)
    assert layout_problems(tmp_path) == [
        "deploy/test_a.py:1 imports the test module test_b (move what it shares to tests/support/)",
        "deploy/test_a.py:2 imports the test module conftest (move what it shares to tests/support/)",
        "unit/search/test_b.py:2 imports subprocess: a unit test starts no process or server",
        "unit/search/test_b.py:3 imports support.services: a unit test starts no process or server",
        "unit/search/test_b.py:5 test_x uses the server fixture qa_triton",
        "unit/search/test_b.py:6 calls bind(): a unit test starts no process or server",
    ]
