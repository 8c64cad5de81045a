"""Where the tools and third-party artifacts that rendering needs come from: helm, and the chart cache.

Upstream charts and CRDs are never copied into this repository. They are read from a cache of
unpacked charts laid out as ``<cache>/<chart>/<version>/Chart.yaml`` (CRDs as
``<cache>/<project>/<version>/manifests/...``), searched in this order:

1. ``MLOPS_CHART_CACHE`` (one or more folders, separated by ``:``), if set; else
2. ``<MLOPS_HOME>/charts`` and the checkout's ``.mlops/charts``, which a user fills with ``helm pull --untar``;
3. ``../shared/upstream`` beside the checkout (the CI machine's copy of the pinned upstream sources).

The cache belongs to the machine (the checkout mlops is installed from), not to the repository being rendered,
so a clone elsewhere (a promotion's working copy) renders with the same charts.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import mlops
from mlops.core.errors import MlopsError

CHECKOUT = Path(mlops.__file__).resolve().parents[2]
# `make tools` unpacks a pinned helm here (in the checkout mlops is installed from) when none is on PATH.
TOOLS_HELM = CHECKOUT / ".tools" / "bin" / "helm"


def helm_binary() -> str:
    found = shutil.which("helm") or TOOLS_HELM
    if not Path(found).is_file():
        raise MlopsError("helm is not installed: run `make tools` (it unpacks a pinned helm) or put helm on PATH")
    return str(found)


def cache_dirs() -> list[Path]:
    """The chart cache folders that exist, in the order they are searched."""
    configured = [Path(p).expanduser() for p in os.environ.get("MLOPS_CHART_CACHE", "").split(os.pathsep) if p]
    home = Path(os.environ.get("MLOPS_HOME", CHECKOUT / ".mlops")).resolve()
    candidates = configured or [home / "charts", CHECKOUT / ".mlops" / "charts", CHECKOUT.parent / "shared" / "upstream"]
    return [folder for folder in dict.fromkeys(candidates) if folder.is_dir()]


def fill_hint(chart: str, version: str, repo_url: str) -> str:
    oci = "://" not in repo_url
    pull = (f"helm pull oci://{repo_url}/{chart} --version {version}" if oci
            else f"helm pull {chart} --repo {repo_url} --version {version}")
    return f"`{pull} --untar --untardir .mlops/charts/{chart}` then rename the folder to {version} (or set MLOPS_CHART_CACHE)"


def find_chart(chart: str, version: str, repo_url: str) -> Path:
    """The unpacked chart ``chart`` at exactly ``version``; a clear error saying how to fill the cache."""
    for folder in cache_dirs():
        candidate = folder / chart / version
        if (candidate / "Chart.yaml").is_file():
            return candidate
    searched = ", ".join(str(f) for f in cache_dirs()) or "no cache folder exists"
    raise MissingArtifact(f"chart {chart} {version} is not in the chart cache ({searched}); fill it with "
                          + fill_hint(chart, version, repo_url))


def find_artifact(project: str, version: str) -> Path:
    """An upstream project's files at ``version`` (e.g. argo-cd/v3.5.1 holding manifests/crds)."""
    for folder in cache_dirs():
        candidate = folder / project / version
        if candidate.is_dir():
            return candidate
    raise MissingArtifact(f"{project} {version} is not in the chart cache ({', '.join(map(str, cache_dirs())) or 'none'}); "
                          f"put its unpacked sources at .mlops/charts/{project}/{version}/ (or set MLOPS_CHART_CACHE)")


class MissingArtifact(MlopsError):
    """An upstream chart or CRD that rendering needs is not in the cache (tests skip, naming it)."""


GITHUB_RAW = "https://raw.githubusercontent.com"
# The CRDs no chart carries in full (model/mlops/gitops/validate.py: reference_crds), as files of their repositories.
ARGOCD_FILES = ("manifests/crds/application-crd.yaml", "manifests/crds/applicationset-crd.yaml",
                "manifests/crds/appproject-crd.yaml", "manifests/install.yaml")
ARGO_WORKFLOWS_KINDS = ("clusterworkflowtemplates", "cronworkflows", "workflowartifactgctasks", "workfloweventbindings",
                        "workflows", "workflowtaskresults", "workflowtasksets", "workflowtemplates")


def pinned_charts(root: Path) -> list[dict]:
    """Every upstream chart the apps chart pins (gitops/apps/values.yaml `charts`): repoURL, chart, version."""
    import yaml

    return list(yaml.safe_load((root / "gitops" / "apps" / "values.yaml").read_text(encoding="utf-8"))["charts"].values())


def reference_files(argocd_version: str, argo_workflows_version: str) -> list[tuple[str, str, str]]:
    """(project, version, path) of each upstream file the validation reads besides the charts."""
    return ([("argo-cd", argocd_version, path) for path in ARGOCD_FILES]
            + [("argo-workflows", argo_workflows_version, f"manifests/base/crds/full/argoproj.io_{kind}.yaml")
               for kind in ARGO_WORKFLOWS_KINDS])


def fill_cache(root: Path, argocd_version: str, target: Path, echo=print, raw_base: str = GITHUB_RAW) -> int:
    """Put every pinned chart (`helm pull --untar`) and reference file (from GitHub at its tag: ArgoCD's at the
    bootstrap's version, Argo Workflows' at its chart's appVersion) that the cache lacks into ``target``; returns how
    many were fetched. Needs the network."""
    import subprocess
    import tempfile
    import urllib.request

    import yaml

    fetched = 0
    for pin in pinned_charts(root):
        try:
            find_chart(pin["chart"], pin["version"], pin["repoURL"])
            continue
        except MissingArtifact:
            pass
        oci = "://" not in pin["repoURL"]
        source = [f"oci://{pin['repoURL']}/{pin['chart']}"] if oci else [pin["chart"], "--repo", pin["repoURL"]]
        with tempfile.TemporaryDirectory(prefix="chart-") as scratch:
            echo(f"helm pull {pin['chart']} {pin['version']}")
            done = subprocess.run([helm_binary(), "pull", *source, "--version", pin["version"], "--untar", "--untardir", scratch],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise MlopsError(f"helm pull of {pin['chart']} {pin['version']} failed: {done.stderr.strip().splitlines()[-1:]}")
            place = target / pin["chart"] / pin["version"]
            place.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(Path(scratch) / pin["chart"]), place)
        fetched += 1
    argo = next(p for p in pinned_charts(root) if p["chart"] == "argo-workflows")
    chart = yaml.safe_load((find_chart("argo-workflows", argo["version"], argo["repoURL"]) / "Chart.yaml").read_text(encoding="utf-8"))
    argo_workflows_version = chart["appVersion"]
    projects = {"argo-cd": "argo-cd", "argo-workflows": "argo-workflows-manifests"}  # cache folder of each project
    for project, version, path in reference_files(argocd_version, argo_workflows_version):
        place = target / projects[project] / version / path
        try:
            if (find_artifact(projects[project], version) / path).is_file():
                continue
        except MissingArtifact:
            pass
        url = f"{raw_base}/argoproj/{project}/{version}/{path}"
        echo(f"fetch {url}")
        try:
            with urllib.request.urlopen(url, timeout=60) as answer:
                body = answer.read()
        except OSError as e:
            raise MlopsError(f"could not fetch {url} ({e}); fill the cache on a machine with network access") from None
        place.parent.mkdir(parents=True, exist_ok=True)
        place.write_bytes(body)
        fetched += 1
    return fetched
