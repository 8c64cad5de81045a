"""pyproject.toml declares what each part imports, and each image's lock holds its extra's closure.

A module's part is decided by its path (PARTS, longest prefix wins). Every third-party import of a module, at the top
or inside a function, must be declared by its part's extra or by the base `dependencies`; and a module loads what it
imports at its top, so the imports of every module reached that way count for the importing module's part too (the
API pod loads mlops.triton.server through mlops.serving.serve: its tritonclient must be in `api`). Import names map
to distributions with importlib.metadata.packages_distributions() (this venv has the dev set: everything).
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = canonicalize_name(PYPROJECT["project"]["name"])

# Where each module ships (path prefix -> part; "base" is `dependencies`, the others are extras of the same name).
PARTS = {
    "model/mlops": "base",                          # __init__, __main__, cli: the CLI every image's entry point is
    "model/mlops/core": "base",                     # errors, settings, input rules, wire contract: every part loads them
    "model/mlops/data": "triton",                   # the corpus and questions the retriever reads
    "model/mlops/search": "triton",                 # encoder, lexical index, retriever
    "model/mlops/triton/python_model.py": "triton",  # the Triton python backend's model (images/triton)
    "model/mlops/triton": "trainer",                # config, export's server and client: `mlops deploy` (Argo)
    "model/mlops/serving": "api",                   # the API pod (images/api)
    "model/mlops/training": "trainer",
    "model/mlops/evaluation": "trainer",
    "model/mlops/lifecycle": "trainer",
    "model/mlops/release": "trainer",               # promote, smoke, gitops wait: Argo steps
    "model/mlops/pipeline.py": "trainer",
    "model/mlops/ask.py": "trainer",
    "model/mlops/review.py": "trainer",             # reads the feedback store and searches the corpus
    "model/mlops/bench": "dev",                     # benchmarks (Locust, py-spy)
    "model/mlops/gitops": "dev",                    # render, validate, chart cache: CI and the promote workflow
    "infra": "infra",                               # the Pulumi program
    "tests": "dev",
    ".github/scripts": "dev",
}
# The lock each image installs, and the extra it is compiled from; requirements.lock is the dev set (make setup).
IMAGES = {"api": "api", "trainer": "trainer", "triton": "triton"}
DEV_LOCK = ROOT / "requirements.lock"
# Modules the runtime provides, from no distribution: Triton's python backend puts this one on the path.
PROVIDED = {"triton_python_backend_utils"}
FIRST_PARTY = {"mlops", "infra", "support"}  # support: the tests' shared helpers (tests/support)


def part_of(relative: str, parts: dict[str, str]) -> str | None:
    matches = [prefix for prefix in parts if relative == prefix or relative.startswith(prefix + "/")]
    return parts[max(matches, key=len)] if matches else None


def imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at the top) for every absolute import of ``path``, inside functions included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(f"{node.module}.{a.name}", id(node) in top) for a in node.names]
    return found


def _module_file(root: Path, module: str) -> Path | None:
    """The file of a first-party module (``mlops.core.errors`` -> model/mlops/core/errors.py), or None."""
    parts = module.split(".")
    bases = [root / "model", root] if parts[0] == "mlops" else [root]
    for base in bases:
        for n in range(len(parts), 0, -1):  # `from mlops.core import errors`: a module, or a name in a module
            stem = base.joinpath(*parts[:n])
            for candidate in (stem.with_suffix(".py"), stem / "__init__.py"):
                if candidate.is_file():
                    return candidate
    return None


def _third_party(path: Path) -> set[str]:
    local = {p.stem for p in path.parent.glob("*.py")} | {p.name for p in path.parent.iterdir() if p.is_dir()}
    names = {module.split(".")[0] for module, _ in imports(path)}
    return {n for n in names if n not in sys.stdlib_module_names and n not in FIRST_PARTY | PROVIDED | local | {"__future__"}}


def _loads(root: Path, path: Path) -> set[Path]:
    """``path`` and every first-party file its top-level imports load, transitively."""
    seen, todo = set(), [path]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for module, at_top in imports(current):
            if at_top and module.split(".")[0] in FIRST_PARTY and (target := _module_file(root, module)):
                todo.append(target)
    return seen


def declared(project: dict) -> dict[str, set[str]]:
    """Part -> the distributions it declares (its extra, the extras it names of this project, and the base)."""
    extras = project.get("optional-dependencies", {})

    def names(requirements: list[str], seen: frozenset[str]) -> set[str]:
        found = set()
        for text in requirements:
            req = Requirement(text)
            if canonicalize_name(req.name) == canonicalize_name(project["name"]):
                for extra in req.extras - seen:
                    found |= names(extras[extra], seen | {extra})
            else:
                found.add(canonicalize_name(req.name))
        return found

    base = names(project.get("dependencies", []), frozenset())
    return {"base": base, **{extra: base | names(reqs, frozenset({extra})) for extra, reqs in extras.items()}}


def undeclared(root: Path, parts: dict[str, str], project: dict) -> list[str]:
    """'<file> (<part>) imports <name> (<distributions>), which <part> does not declare' for each gap."""
    by_part = declared(project)
    distributions = importlib.metadata.packages_distributions()
    problems = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        part = part_of(relative, parts)
        if part is None or "/.venv/" in f"/{relative}":
            continue
        for loaded in sorted(_loads(root, path)):
            for name in sorted(_third_party(loaded)):
                dists = {canonicalize_name(d) for d in distributions.get(name, [])}
                if not dists & by_part[part]:
                    via = "" if loaded == path else f" (through {loaded.relative_to(root).as_posix()})"
                    problems.append(f"{relative} ({part}) imports {name}{via} ({', '.join(sorted(dists)) or 'no distribution'}), "
                                    f"which {part} does not declare")
    return problems


def test_every_module_has_a_part():
    files = [p.relative_to(ROOT).as_posix() for root in ("model/mlops", "infra") for p in (ROOT / root).rglob("*.py")]
    assert files and all(part_of(f, PARTS) for f in files)
    assert set(PARTS.values()) - {"base"} <= set(PYPROJECT["project"]["optional-dependencies"])


def test_each_part_declares_what_it_imports():
    assert undeclared(ROOT, PARTS, PYPROJECT["project"]) == []


def test_an_undeclared_import_is_caught(tmp_path: Path):
    for name, text in {
        "model/mlops/__init__.py": "",
        "model/mlops/core/__init__.py": "",
        "model/mlops/core/rules.py": "import pydantic\n",
        "model/mlops/serving/__init__.py": "",
        "model/mlops/serving/api.py": "import fastapi\nfrom mlops.core import rules\n\ndef f():\n    import torch\n",
        "model/mlops/search/encoder.py": "import torch\n",
        "model/mlops/triton/python_model.py": "import triton_python_backend_utils\nfrom mlops.search import encoder\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    project = {"name": "mlops", "dependencies": ["pydantic"],
               "optional-dependencies": {"api": ["fastapi"], "triton": ["numpy"], "trainer": ["mlops[triton]"]}}
    parts = {"model/mlops": "base", "model/mlops/serving": "api", "model/mlops/search": "trainer", "model/mlops/triton": "triton"}
    assert undeclared(tmp_path, parts, project) == [
        "model/mlops/search/encoder.py (trainer) imports torch (torch), which trainer does not declare",
        "model/mlops/serving/api.py (api) imports torch (torch), which api does not declare",
        "model/mlops/triton/python_model.py (triton) imports torch (through model/mlops/search/encoder.py) (torch), "
        "which triton does not declare",
    ]
    project["optional-dependencies"] = {"api": ["fastapi", "torch"], "triton": ["torch"], "trainer": ["mlops[triton]"]}
    assert undeclared(tmp_path, parts, project) == []  # trainer declares torch through mlops[triton]


# -- the locks ---------------------------------------------------------------------------------------------------
def read_lock(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version and ";" not in version, f"{path.name}: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version
    return pins


def closure(requirements: list[str], project: dict) -> set[str]:
    """The distributions ``requirements`` bring on this platform, read from the installed metadata."""
    found: set[str] = set()
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker and not req.marker.evaluate({**default_environment(), "extra": extra}):
            continue
        name = canonicalize_name(req.name)
        if name == PROJECT:
            extras = project["optional-dependencies"]
            todo += [(Requirement(r), "") for e in req.extras for r in extras[e]]
            continue
        key = (name, tuple(sorted(req.extras)))
        if key in found:
            continue
        found.add(key)
        requires = importlib.metadata.distribution(name).requires or []
        todo += [(Requirement(r), e) for r in requires for e in ("", *req.extras)]
    return {name for name, _ in found}


def _extra_closure(extra: str) -> set[str]:
    project = PYPROJECT["project"]
    return closure([*project["dependencies"], *project["optional-dependencies"][extra]], project)


def test_the_dev_lock_is_what_this_venv_has():
    """make setup installs requirements.lock; each pin exists (it is installed, at that version)."""
    for name, version in read_lock(DEV_LOCK).items():
        # The public version: this machine's torch is the CPU build (2.13.0+cpu) of the lock's 2.13.0.
        assert Version(importlib.metadata.version(name)).public == version, f"{name}: run make setup"


@pytest.mark.parametrize("extra", ["dev", *IMAGES.values()])
def test_a_lock_holds_its_extras_closure_and_no_more(extra: str):
    dev = read_lock(DEV_LOCK)
    lock = read_lock(DEV_LOCK if extra == "dev" else ROOT / "images" / extra / "requirements.lock")
    needed = _extra_closure(extra)
    assert needed - set(lock) == set(), f"{extra}'s lock misses part of its closure"
    # Pins the dev set does not have are the CUDA runtime wheels PyPI's torch takes on Linux (`make lock`).
    assert {n for n in lock if n in dev} - needed == set(), f"{extra}'s lock holds what {extra} does not need"
    assert {n: v for n, v in lock.items() if n in dev and dev[n] != v} == {}, "an image lock and the dev lock disagree"
    assert all(n.startswith(("nvidia-", "cuda-")) or n == "triton" for n in set(lock) - set(dev))


def test_the_api_lock_has_no_torch_mlflow_or_infra():
    lock = read_lock(ROOT / "images" / "api" / "requirements.lock")
    assert not {"torch", "transformers", "mlflow", "pulumi", "ansible-core", "boto3", "playwright", "moto", "locust"} & set(lock)
    assert {"fastapi", "uvicorn", "sqlalchemy", "psycopg", "prometheus-client", "tritonclient"} <= set(lock)
