"""`mlops gitops render ENV`: every manifest ArgoCD would apply for an environment, from this repository.

The root application applies the Application manifests in ``gitops/envs/<env>/apps/``; each of those
that points into this repository is rendered as ArgoCD would: a chart with ``helm template`` exactly
as the Application says (chart path, release name, namespace, value files in order), a folder of
plain manifests as its YAML files. Upstream charts (the platform) cannot be fetched offline; the
stream names them and their pinned versions instead.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

import mlops
from mlops.errors import MlopsError
from mlops.gitops.layout import env_dir

# `make tools` unpacks a pinned helm here (in the checkout mlops is installed from) when none is on PATH.
TOOLS_HELM = Path(mlops.__file__).resolve().parents[2] / ".tools" / "bin" / "helm"


def helm_binary() -> str:
    found = shutil.which("helm") or TOOLS_HELM
    if not Path(found).is_file():
        raise MlopsError("helm is not installed: run `make tools` (it unpacks a pinned helm) or put helm on PATH")
    return str(found)


def applications(root: Path, env: str) -> list[tuple[Path, dict]]:
    folder = env_dir(root, env) / "apps"
    apps = [(path, yaml.safe_load(path.read_text(encoding="utf-8"))) for path in sorted(folder.glob("*.yaml"))]
    if not apps:
        raise MlopsError(f"no Application manifests in {folder}")
    return apps


def helm_template(root: Path, app: dict, source: dict) -> str:
    chart = root / source["path"]
    helm = source.get("helm", {})
    command = [helm_binary(), "template", helm.get("releaseName", app["metadata"]["name"]), str(chart),
               "--namespace", app["spec"]["destination"]["namespace"]]
    for values in helm.get("valueFiles", []):
        command += ["--values", str((chart / values).resolve())]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise MlopsError(f"helm template of {app['metadata']['name']} failed: {done.stderr.strip().splitlines()[-1]}")
    return done.stdout


def directory_manifests(root: Path, source: dict) -> str:
    """A plain-manifest source: ArgoCD applies every YAML file of the folder (not recursing)."""
    folder = root / source["path"]
    return "".join(f"---\n# Source: {path.relative_to(root)}\n{path.read_text(encoding='utf-8').rstrip()}\n"
                   for path in sorted(folder.glob("*.yaml")))


def render_application(root: Path, app: dict) -> str:
    """What one Application applies from this repository; upstream charts are named, not fetched."""
    parts = []
    for source in app["spec"].get("sources") or [app["spec"]["source"]]:
        if "chart" in source:
            parts.append(f"---\n# {app['metadata']['name']}: chart {source['chart']} {source['targetRevision']} from "
                         f"{source['repoURL']}, rendered by ArgoCD (upstream charts are not fetched here)\n")
        elif "path" not in source:
            continue  # a `ref: values` source only lends its files to the chart above
        elif (root / source["path"] / "Chart.yaml").is_file():
            parts.append(helm_template(root, app, source))
        else:
            parts.append(directory_manifests(root, source))
    return "".join(parts)


def render(root: Path, env: str) -> str:
    """The Application manifests, then what each renders to, as one YAML stream."""
    parts = []
    for path, app in applications(root, env):
        parts.append(f"---\n# Source: {path.relative_to(root)}\n" + path.read_text(encoding="utf-8").rstrip() + "\n")
        parts.append(render_application(root, app))  # helm's output starts with its own "---"
    return "".join(parts)
