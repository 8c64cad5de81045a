"""Filling the chart cache (`mlops gitops fill-cache`): what it asks helm and GitHub for, and where it puts it.

The network is out of reach here, so helm is a stand-in on PATH that unpacks a minimal chart as `helm pull --untar`
does, and GitHub's raw file host is a local HTTP server; the pins and paths are the real ones.
"""

from __future__ import annotations

import http.server
import os
import stat
import threading
from pathlib import Path

import pytest
import yaml

from mlops.core.errors import MlopsError
from mlops.gitops.charts import fill_cache, find_chart, pinned_charts, reference_files
from support.paths import ROOT

FAKE_HELM = """#!/usr/bin/env python3
import sys, pathlib, json
args = sys.argv[1:]
pathlib.Path(sys.argv[0] + ".log").open("a").write(json.dumps(args) + "\\n")
name = args[1].rsplit("/", 1)[-1]
version, folder = args[args.index("--version") + 1], pathlib.Path(args[args.index("--untardir") + 1]) / name
folder.mkdir(parents=True)
app = "v4.0.4" if name == "argo-workflows" else version
(folder / "Chart.yaml").write_text(f"apiVersion: v2\\nname: {name}\\nversion: {version}\\nappVersion: {app}\\n")
"""


@pytest.fixture
def raw_server(tmp_path: Path):
    """GitHub's raw file host, serving <owner>/<repo>/<tag>/<path> from a folder."""
    files = tmp_path / "raw"
    for project, version, path in reference_files("v3.5.1", "v4.0.4"):
        place = files / "argoproj" / project / version / path
        place.parent.mkdir(parents=True, exist_ok=True)
        place.write_text(f"# {project} {version} {path}\n")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(files))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def fake_helm(tmp_path: Path, monkeypatch) -> Path:
    helm = tmp_path / "bin" / "helm"
    helm.parent.mkdir()
    helm.write_text(FAKE_HELM)
    helm.chmod(helm.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{helm.parent}{os.pathsep}{os.environ['PATH']}")
    return helm


def test_an_empty_cache_is_filled_with_every_pin(tmp_path: Path, monkeypatch, fake_helm: Path, raw_server: str):
    cache = tmp_path / "cache"
    monkeypatch.setenv("MLOPS_CHART_CACHE", str(cache))
    fetched = fill_cache(ROOT, "v3.5.1", cache, echo=lambda *_: None, raw_base=raw_server)
    pins = pinned_charts(ROOT)
    assert fetched == len(pins) + len(reference_files("v3.5.1", "v4.0.4"))
    for pin in pins:
        chart = yaml.safe_load((find_chart(pin["chart"], pin["version"], pin["repoURL"]) / "Chart.yaml").read_text())
        assert (chart["name"], chart["version"]) == (pin["chart"], pin["version"])
    calls = [yaml.safe_load(line) for line in Path(str(fake_helm) + ".log").read_text().splitlines()]
    assert ["pull", "oci://registry-1.docker.io/bitnamicharts/postgresql", "--version", "16.7.21"] == calls[[c[1] for c in calls].index(
        "oci://registry-1.docker.io/bitnamicharts/postgresql")][:4]
    assert ["pull", "minio", "--repo", "https://charts.min.io/", "--version", "5.4.0"] in [c[:6] for c in calls]
    assert (cache / "argo-cd" / "v3.5.1" / "manifests" / "crds" / "application-crd.yaml").is_file()
    assert (cache / "argo-workflows-manifests" / "v4.0.4" / "manifests" / "base" / "crds" / "full" / "argoproj.io_workflows.yaml").is_file()
    # A full cache asks for nothing.
    assert fill_cache(ROOT, "v3.5.1", cache, echo=lambda *_: None, raw_base=raw_server) == 0


def test_a_file_github_does_not_have_is_one_clear_error(tmp_path: Path, monkeypatch, fake_helm: Path, raw_server: str):
    cache = tmp_path / "cache"
    monkeypatch.setenv("MLOPS_CHART_CACHE", str(cache))
    with pytest.raises(MlopsError, match=r"could not fetch http://127\.0\.0\.1:\d+/argoproj/argo-cd/v9\.9\.9/manifests/crds/"
                                         r"application-crd\.yaml .*fill the cache on a machine with network access"):
        fill_cache(ROOT, "v9.9.9", cache, echo=lambda *_: None, raw_base=raw_server)
