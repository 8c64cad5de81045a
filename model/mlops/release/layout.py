"""Where each environment's promotion surface lives in gitops/, and how to read and write it.

An empty model version (``model.version: ""``) and empty image tags mean "nothing promoted yet": the
state of an environment before its first promotion, which sets both.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from mlops.core.errors import MlopsError
from mlops.core.files import write_atomic

ENVIRONMENTS = ("dev", "staging", "prod")


def env_dir(root: Path, env: str) -> Path:
    if env not in ENVIRONMENTS:
        raise MlopsError(f"unknown environment {env!r}; use one of {', '.join(ENVIRONMENTS)}")
    return root / "gitops" / "envs" / env


def model_file(root: Path, env: str) -> Path:
    return env_dir(root, env) / "values" / "model.yaml"


def images_file(root: Path, env: str) -> Path:
    return env_dir(root, env) / "values" / "images.yaml"


def promotion_files(root: Path, env: str) -> list[Path]:
    """Everything a promotion may change in ``env``: the model version and the image tags."""
    return [model_file(root, env), images_file(root, env)]


def _load(path: Path, what: str) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise TypeError
        return data
    except (OSError, yaml.YAMLError, TypeError) as e:
        raise MlopsError(f"{path} does not hold {what} ({type(e).__name__}); restore it from git") from None


def _text(value) -> str:
    return "" if value is None else str(value)


def read_model_version(root: Path, env: str) -> str:
    """The model version ``env`` runs; "" before its first promotion."""
    path = model_file(root, env)
    try:
        return _text(_load(path, "model.version")["model"]["version"])
    except (KeyError, TypeError):
        raise MlopsError(f"{path} does not hold model.version; restore it from git") from None


def read_image_tag(root: Path, env: str) -> str:
    """The release tag ``env`` runs, which all of our images carry; "" before its first promotion."""
    path = images_file(root, env)
    try:
        tags = {_text(image["tag"]) for image in _load(path, "images.<name>.tag")["images"].values()}
    except (KeyError, TypeError, AttributeError):
        raise MlopsError(f"{path} does not hold images.<name>.tag; restore it from git") from None
    if len(tags) != 1:
        shown = ", ".join(repr(tag) for tag in sorted(tags))
        raise MlopsError(f"{path} pins different tags ({shown}); make them one release tag")
    return tags.pop()


def _rewrite(path: Path, key: str, value: str) -> Path:
    """Rewrite every ``key:`` line to the new value, keeping comments and layout; atomically."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if not any(line.strip().startswith(f"{key}:") for line in lines):
        raise MlopsError(f"{path} has no `{key}:` line to change; restore it from git")
    replaced = [line[: len(line) - len(line.lstrip())] + f'{key}: "{value}"\n' if line.strip().startswith(f"{key}:") else line
                for line in lines]
    write_atomic(path, "".join(replaced))
    return path


def write_model_version(root: Path, env: str, version: str) -> Path:
    return _rewrite(model_file(root, env), "version", version)


def write_image_tag(root: Path, env: str, tag: str) -> Path:
    return _rewrite(images_file(root, env), "tag", tag)
