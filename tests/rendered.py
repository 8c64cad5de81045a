"""Our service chart as ArgoCD renders it for an environment: the real helm, through `mlops gitops render`'s code."""

from __future__ import annotations

from pathlib import Path

import yaml

from mlops.gitops.render import applications, render_application

ROOT = Path(__file__).resolve().parents[1]
SERVICE_CHART = "gitops/charts/transformers-qa"


def service_manifests(env: str) -> list[dict]:
    """What the environment's Application for our chart renders to (its value files, release name, namespace)."""
    for _, app in applications(ROOT, env):
        sources = app["spec"].get("sources") or [app["spec"]["source"]]
        if any(s.get("path") == SERVICE_CHART for s in sources):
            return [d for d in yaml.safe_load_all(render_application(ROOT, app)) if d]
    raise AssertionError(f"no Application in gitops/envs/{env}/apps renders {SERVICE_CHART}")


def deployment(manifests: list[dict], component: str) -> dict:
    return next(d for d in manifests if d["kind"] == "Deployment"
                and d["metadata"]["labels"].get("app.kubernetes.io/component") == component)


def container(manifests: list[dict], component: str) -> dict:
    pod = deployment(manifests, component)["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == component)
