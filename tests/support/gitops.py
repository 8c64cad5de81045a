"""What the GitOps tests share: each environment rendered once (as ArgoCD would), and skips that name what is missing.

Upstream charts and CRDs come from the chart cache (model/mlops/gitops/charts.py): ../shared/upstream in CI,
.mlops/charts or $MLOPS_CHART_CACHE elsewhere. An Application whose chart is not there is not rendered, and
the tests that need it skip, saying which chart and how to fill the cache.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest

from mlops.gitops.charts import MissingArtifact, cache_dirs
from mlops.gitops.render import Rendered, load_all, render_application, render_environment, root_application
from mlops.gitops.validate import Schemas, reference_crds
from mlops.release.layout import ENVIRONMENTS

ROOT = Path(__file__).resolve().parents[2]


def require_cache() -> None:
    if not cache_dirs():
        pytest.skip("no chart cache: put the upstream charts in .mlops/charts or set MLOPS_CHART_CACHE "
                    "(CI uses ../shared/upstream)")


@functools.cache
def _rendered(env: str) -> tuple[Rendered, ...]:
    return tuple(render_environment(ROOT, env, allow_missing=True))


def rendered(env: str) -> list[Rendered]:
    """Every Application of ``env`` (the root first) with what it applies; charts not cached are left empty."""
    require_cache()
    return list(_rendered(env))


def application(env: str, name: str) -> Rendered:
    return next(r for r in rendered(env) if r.name == name)


def documents(env: str, kind: str | None = None) -> list[dict]:
    """The objects of every rendered Application of ``env`` (of one kind)."""
    return [doc for r in rendered(env) for doc in r.documents if kind is None or doc.get("kind") == kind]


def missing(env: str) -> list[str]:
    return [r.missing for r in rendered(env) if r.missing]


@functools.cache
def _schemas(env: str) -> Schemas:
    results = _rendered(env)
    crds = [doc for r in results for doc in r.documents if doc.get("kind") == "CustomResourceDefinition"]
    try:
        return Schemas(crds + reference_crds(ROOT, list(results)))
    except MissingArtifact as e:
        pytest.skip(str(e))


def schemas(env: str) -> Schemas:
    """The CRD schemas of ``env``: those its charts install, plus ArgoCD's and Argo Workflows' full ones."""
    require_cache()
    return _schemas(env)


def promoted_service(env: str) -> list[dict]:
    """Our chart as ``env``'s Application renders it once a promotion has set the model version and image tags
    (before the first promotion it runs no pods)."""
    app = copy.deepcopy(application(env, f"transformers-qa-{env}").application)
    app["spec"]["source"]["helm"]["parameters"] = [
        {"name": "model.version", "value": "1", "forceString": True},
        {"name": "images.triton.tag", "value": "v1.0.0"}, {"name": "images.api.tag", "value": "v1.0.0"}]
    return load_all(render_application(ROOT, app, []))


def container(manifests: list[dict], component: str) -> dict:
    """The container of our Deployment of ``component`` (triton, api)."""
    pod = next(d for d in manifests if d["kind"] == "Deployment"
               and d["metadata"]["labels"].get("app.kubernetes.io/component") == component)["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == component)


def render_all(root: Path, env: str) -> str:
    """Everything ``env`` applies from the repository at ``root``, as one text (charts not cached left out)."""
    return "".join(f"--- {r.name}\n{r.manifests}" for r in render_environment(root, env, allow_missing=True))


def changed(doc: dict, path: str, value=None, delete: bool = False) -> dict:
    """A copy of ``doc`` with the field at ``path`` set or deleted: keys joined by '/' (a '/' inside a key
    written '~'), list indexes as numbers."""
    doc = copy.deepcopy(doc)
    *parents, last = [key.replace("~", "/") for key in path.split("/")]
    node = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if delete:
        del node[last]
    else:
        node[int(last) if isinstance(node, list) else last] = value
    return doc


def application_names(env: str) -> list[str]:
    """root-<env> and the Applications it creates, for parametrizing (the apps chart renders in a moment)."""
    root = root_application(ROOT, env)
    children = [doc["metadata"]["name"] for doc in load_all(render_application(ROOT, root, [])) if doc.get("kind") == "Application"]
    return [root["metadata"]["name"], *sorted(children)]


ENV_APPS = [(env, name) for env in ENVIRONMENTS for name in application_names(env)]
