"""The package's layers: each imports only from layers below it, and the light entry points never load torch."""

from __future__ import annotations

import ast
from pathlib import Path

from support.paths import ROOT

PACKAGE = ROOT / "model" / "mlops"
# Lowest first. The CLI and the local end-to-end commands (cli, pipeline, ask) sit on top of all of them.
LAYERS = ["core", "data", "search", "triton", "lifecycle", "training", "evaluation", "serving", "bench", "release", "gitops"]
TOP = len(LAYERS)


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else TOP


def imports(path: Path) -> set[str]:
    """Every mlops module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("mlops.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mlops"):
            found |= {f"{node.module}.{a.name}" if node.module == "mlops" else node.module for a in node.names}
    return found


def upward_imports(package: Path) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        module = ".".join(("mlops", *path.relative_to(package).with_suffix("").parts)).removesuffix(".__init__")
        found += [f"{module} imports {target}" for target in sorted(imports(path)) if layer(target) > layer(module)]
    return found


def test_every_package_is_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(LAYERS)


def test_no_layer_imports_a_higher_one():
    assert upward_imports(PACKAGE) == []


def test_an_upward_import_is_caught(tmp_path: Path):
    for name, text in {"core/__init__.py": "", "core/rules.py": "from mlops.serving.api import create_app\n",
                       "serving/__init__.py": "", "serving/api.py": "def f():\n    import mlops.core.rules\n"}.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    assert upward_imports(tmp_path) == ["mlops.core.rules imports mlops.serving.api"]


