"""Where each environment's promotion surface lives in gitops/, and how to read and write it."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from mlops.errors import MlopsError

ENVIRONMENTS = ("dev", "staging", "prod")


def env_dir(root: Path, env: str) -> Path:
    if env not in ENVIRONMENTS:
        raise MlopsError(f"unknown environment {env!r}; use one of {', '.join(ENVIRONMENTS)}")
    return root / "gitops" / "envs" / env


def model_file(root: Path, env: str) -> Path:
    return env_dir(root, env) / "values" / "model.yaml"


def read_model_version(root: Path, env: str) -> str:
    path = model_file(root, env)
    try:
        return str(yaml.safe_load(path.read_text(encoding="utf-8"))["model"]["version"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
        raise MlopsError(f"{path} does not hold model.version ({type(e).__name__}); restore it from git") from None


def write_model_version(root: Path, env: str, version: str) -> Path:
    """Rewrite the version line only, keeping the file's comment; atomically."""
    path = model_file(root, env)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if not any(line.strip().startswith("version:") for line in lines):
        raise MlopsError(f"{path} has no `version:` line to change; restore it from git")
    replaced = [f'  version: "{version}"\n' if line.strip().startswith("version:") else line for line in lines]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(replaced), encoding="utf-8")
    os.replace(tmp, path)
    return path
