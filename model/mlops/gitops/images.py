"""Every container image an environment runs, in one list: what a release job pre-pulls and checks exists.

Collected from the rendered manifests (pod templates, the operators' custom resources, Argo templates,
and images that operators are told to run through their arguments), from what the bootstrap deploys itself
(the `*_image` settings of its roles) and from the Dockerfiles' base images.
"""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path

import yaml

from mlops.gitops.charts import MissingArtifact, find_artifact
from mlops.gitops.render import load_all, role_defaults

# An image reference passed to an operator as a flag: `--prometheus-config-reloader=quay.io/x/y:v1`, or
# `--executor-image` followed by `quay.io/argoproj/argoexec:v4.0.4`.
_REFERENCE = r"(?:[\w.-]+/)+[\w.-]+(?::[\w.-]+|@sha256:[0-9a-f]{64})"
_FLAG_WITH_IMAGE = re.compile(rf"^--[a-z-]*(?:image|reloader)[a-z-]*=({_REFERENCE})$")
_IMAGE_FLAG = re.compile(r"^--[a-z-]*image$")
_IMAGE = re.compile(rf"^{_REFERENCE}$")
_FROM = re.compile(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)", re.MULTILINE)


def images_in(node: object) -> set[str]:
    """Image references anywhere in a manifest: values of `image:` keys and image flags in args. A templated one
    (an Argo step's `trainer:{{inputs.parameters.image-tag}}`) is left out: the release builds it."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and isinstance(value, str):
                if "{{" not in value:
                    found.add(value)
            else:
                found |= images_in(value)
    elif isinstance(node, list):
        for before, item in pairwise([None, *node]):
            if isinstance(item, str) and (match := _FLAG_WITH_IMAGE.match(item)):
                found.add(match.group(1))
            elif isinstance(item, str) and isinstance(before, str) and _IMAGE_FLAG.match(before) and _IMAGE.match(item):
                found.add(item)
            else:
                found |= images_in(item)
    return found


def bootstrap_images(root: Path) -> set[str]:
    """Images the bootstrap runs outside gitops/: its roles' `*_image` settings (the volumes' provisioner) and
    ArgoCD's install manifest at the pinned version (from the chart cache, when it is there)."""
    found = set()
    for path in sorted((root / "infra" / "ansible" / "roles").glob("*/defaults/main.yml")):
        found |= {value for key, value in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).items()
                  if key.endswith("_image") and isinstance(value, str)}
    try:
        install = find_artifact("argo-cd", role_defaults(root)["argocd_version"]) / "manifests" / "install.yaml"
        found |= images_in(load_all(install.read_text(encoding="utf-8")))
    except MissingArtifact:
        pass
    return found


def chart_images(root: Path) -> set[str]:
    """Our chart's pinned helper images (the model fetcher); its release images come with each promotion."""
    values = yaml.safe_load((root / "gitops" / "charts" / "transformers-qa" / "values.yaml").read_text(encoding="utf-8"))
    return {f"{image['repository']}:{image['tag']}" for image in values["images"].values()
            if isinstance(image, dict) and image.get("tag")}


def all_images(root: Path, rendered_documents: list[dict]) -> set[str]:
    """The one list: the environments' rendered objects, our chart's helpers, the bootstrap's, the Dockerfiles' bases."""
    return images_in(rendered_documents) | chart_images(root) | bootstrap_images(root) | dockerfile_bases(root)


def dockerfile_bases(root: Path) -> set[str]:
    return {match for path in sorted((root / "images").glob("*/Dockerfile"))
            for match in _FROM.findall(path.read_text(encoding="utf-8"))}


def is_pinned(image: str) -> bool:
    """A tag that names a release (not latest, not absent) or a digest."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")
