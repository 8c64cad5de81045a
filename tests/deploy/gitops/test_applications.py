"""Every ArgoCD Application we ship, checked against ArgoCD's own CRD (v3.5.1, from the chart cache) and our rules.

Collected: root-<env> exactly as the bootstrap renders it, and every Application it renders from the apps chart
(gitops/apps with gitops/envs/<env>/apps.yaml). Each rule has a failing fixture below, so a check that can never
fail is caught too.
"""

from __future__ import annotations

import copy
import re

import pytest

from mlops.gitops.charts import find_artifact
from mlops.gitops.render import load_all, render_application, role_defaults, root_application, sources
from mlops.gitops.validate import Schemas, crd_documents, problems
from mlops.release.layout import ENVIRONMENTS
from support.gitops import ROOT, changed, rendered, require_cache

API_VERSION = "argoproj.io/v1alpha1"
SYNC_WAVE = "argocd.argoproj.io/sync-wave"
# An exact chart version: 1.2.3 (optionally v1.2.3, a -prerelease and a +build); no ranges, no `*`, no `latest`.
EXACT_CHART_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
INTEGER_STRING = re.compile(r"^-?\d+$")
RETRY = {"limit": 10, "refresh": True, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"}}


def this_repo(url: str | None) -> bool:
    def plain(u: str) -> str:
        u = u.strip().rstrip("/")
        return (u[:-4] if u.endswith(".git") else u).lower()
    return bool(url) and plain(url) == plain(role_defaults(ROOT)["argocd_repo_url"])


def inside_repo(path) -> bool:
    return path.resolve().is_relative_to(ROOT.resolve())


def collect() -> list[tuple[str, dict]]:
    """(label, Application) for each environment's root and the Applications it renders (no chart cache needed)."""
    found = []
    for env in ENVIRONMENTS:
        root = root_application(ROOT, env)
        found.append((f"{env}:{root['metadata']['name']}", root))
        found += [(f"{env}:{doc['metadata']['name']}", doc) for doc in load_all(render_application(ROOT, root, []))
                  if doc.get("kind") == "Application"]
    return found


APPLICATIONS = collect()


@pytest.fixture(scope="module")
def argocd_schemas() -> Schemas:
    require_cache()
    crds = find_artifact("argo-cd", role_defaults(ROOT)["argocd_version"]) / "manifests" / "crds"
    return Schemas(crd_documents(sorted(crds.glob("*-crd.yaml"))))


def source_problems(spec: dict) -> list[str]:
    found = []
    all_sources = sources({"spec": spec}) if spec.get("source") or spec.get("sources") else []
    refs = {s["ref"]: s for s in all_sources if s.get("ref")}
    for index, source in enumerate(all_sources):
        where = f"sources[{index}]" if "sources" in spec else "source"
        chart, revision = source.get("chart"), source.get("targetRevision")
        if chart and not (isinstance(revision, str) and EXACT_CHART_VERSION.match(revision)):
            found.append(f"{where}: chart {chart!r} must pin an exact version, got targetRevision {revision!r}")
        local = this_repo(source.get("repoURL"))
        path = source.get("path")
        if local and path is not None and not ((ROOT / path).is_dir() and inside_repo(ROOT / path)):
            found.append(f"{where}: path {path!r} does not exist in this repository")
        helm = source.get("helm") or {}
        for value_file in helm.get("valueFiles") or []:
            if value_file.startswith("$"):
                ref, _, rest = value_file[1:].partition("/")
                if ref not in refs:
                    found.append(f"{where}: valueFile {value_file!r} refers to ${ref} but no source has `ref: {ref}`")
                    continue
                target = ROOT / rest
            elif local and path is not None:
                target = ROOT / path / value_file
            else:
                continue
            optional = helm.get("ignoreMissingValueFiles") and not target.name == "values.yaml"
            if not optional and not (target.is_file() and inside_repo(target)):
                found.append(f"{where}: valueFile {value_file!r} does not exist in this repository")
    return found


def application_problems(app: dict, schemas: Schemas) -> list[str]:
    """Everything wrong with one Application; [] when it is fine."""
    found = [p.split(": ", 1)[1] for p in problems([app], schemas)]
    metadata = app.get("metadata") or {}
    if app.get("apiVersion") != API_VERSION or app.get("kind") != "Application":
        found.append(f"must be an {API_VERSION} Application")
    if metadata.get("namespace") != "argocd":
        found.append(f"metadata.namespace must be argocd, got {metadata.get('namespace')!r}")
    wave = (metadata.get("annotations") or {}).get(SYNC_WAVE)
    if wave is not None and not (isinstance(wave, str) and INTEGER_STRING.match(wave)):
        found.append(f"metadata.annotations[{SYNC_WAVE}] must be an integer string, got {wave!r}")
    spec = app.get("spec") or {}
    policy = spec.get("syncPolicy") or {}
    if policy.get("automated") != {"prune": True, "selfHeal": True}:
        found.append("syncPolicy.automated must prune and self-heal: git is the only way in")
    if policy.get("retry") != RETRY:
        found.append(f"syncPolicy.retry must be {RETRY}: automated sync does not retry a failed sync of the same commit")
    return found + source_problems(spec)


@pytest.mark.parametrize(("label", "app"), APPLICATIONS, ids=[label for label, _ in APPLICATIONS])
def test_application_is_valid(label, app, argocd_schemas):
    assert application_problems(app, argocd_schemas) == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_environment_has_its_applications_once(env):
    names = [label for label, _ in APPLICATIONS if label.startswith(f"{env}:")]
    assert len(names) == len(set(names)) > 2
    assert f"{env}:transformers-qa-{env}" in names
    assert (f"{env}:workflows-{env}" in names) == (env == "staging")  # the release pipeline runs in staging only


def test_platform_value_files_belong_to_an_environment_that_runs_them():
    """gitops/platform/<component>/ holds values.yaml and <env>.yaml files only, for environments that run it (a
    misnamed file would otherwise be skipped silently: the platform Applications ignore a missing <env>.yaml)."""
    runs = {(label.split(":")[0], source["chart"]) for label, app in APPLICATIONS for source in sources(app) if "chart" in source}
    for folder in sorted(p for p in (ROOT / "gitops" / "platform").iterdir() if p.is_dir()):
        for path in sorted(folder.glob("*.yaml")):
            if folder.name == "cert-issuer":
                continue  # plain manifests, applied as they are
            env = path.stem
            assert path.name == "values.yaml" or (env, folder.name) in runs, f"{path.relative_to(ROOT)}: no environment runs it"


def test_rendered_applications_are_the_ones_collected():
    require_cache()
    for env in ENVIRONMENTS:
        assert {r.name for r in rendered(env)} == {label.split(":")[1] for label, _ in APPLICATIONS if label.startswith(f"{env}:")}


# --- fixtures proving each check can fail ----------------------------------------------------------------------

GOOD = {
    "apiVersion": API_VERSION,
    "kind": "Application",
    "metadata": {"name": "fixture", "namespace": "argocd", "annotations": {SYNC_WAVE: "-1"}},
    "spec": {
        "project": "default",
        "source": {
            "repoURL": "https://github.com/transformers-qa/transformers-qa.git",
            "targetRevision": "main",
            "path": "gitops/charts/transformers-qa",
            "helm": {"releaseName": "fixture", "valueFiles": ["../../envs/dev/values/service.yaml"]},
        },
        "destination": {"server": "https://kubernetes.default.svc", "namespace": "fixture"},
        "syncPolicy": {"automated": {"prune": True, "selfHeal": True}, "retry": copy.deepcopy(RETRY),
                       "syncOptions": ["CreateNamespace=false"]},
    },
}

# An upstream chart with its values from this repository (the platform Applications' shape).
GOOD_MULTI_SOURCE = copy.deepcopy(GOOD)
del GOOD_MULTI_SOURCE["spec"]["source"]
GOOD_MULTI_SOURCE["spec"]["sources"] = [
    {"repoURL": "https://charts.example.com", "chart": "some-chart", "targetRevision": "1.2.3",
     "helm": {"ignoreMissingValueFiles": True,
              "valueFiles": ["$values/gitops/platform/minio/values.yaml", "$values/gitops/platform/minio/qa.yaml"]}},
    {"repoURL": "https://github.com/transformers-qa/transformers-qa", "targetRevision": "main", "ref": "values"},
]


def test_good_fixtures_pass(argocd_schemas):
    assert application_problems(GOOD, argocd_schemas) == []
    assert application_problems(GOOD_MULTI_SOURCE, argocd_schemas) == []


BAD = [
    ("misspelled selfheal", GOOD, "spec/syncPolicy/automated/selfheal", True, "('selfheal' was unexpected)"),
    ("misspelled helm valuesFiles", GOOD, "spec/source/helm/valuesFiles", ["x.yaml"], "('valuesFiles' was unexpected)"),
    ("wrong type", GOOD, "spec/revisionHistoryLimit", "10", "'10' is not of type 'integer'"),
    ("missing destination", GOOD, "spec/destination", None, "'destination' is a required property"),
    ("no self-heal", GOOD, "spec/syncPolicy/automated/selfHeal", False, "must prune and self-heal"),
    ("no retry", GOOD, "spec/syncPolicy/retry", None, "syncPolicy.retry must be"),
    ("retry without refresh", GOOD, "spec/syncPolicy/retry/refresh", False, "syncPolicy.retry must be"),
    ("wrong apiVersion", GOOD, "apiVersion", "argoproj.io/v1beta1", "must be an argoproj.io/v1alpha1 Application"),
    ("wrong namespace", GOOD, "metadata/namespace", "default", "metadata.namespace must be argocd"),
    ("sync-wave not integer", GOOD, "metadata/annotations", {SYNC_WAVE: "first"}, "must be an integer string"),
    ("path missing in repo", GOOD, "spec/source/path", "gitops/charts/does-not-exist", "does not exist in this repository"),
    ("path escaping repo", GOOD, "spec/source/path", "..", "path '..' does not exist"),
    ("valueFile missing", GOOD, "spec/source/helm/valueFiles", ["../../envs/dev/values/nope.yaml"], "does not exist"),
    ("chart HEAD", GOOD_MULTI_SOURCE, "spec/sources/0/targetRevision", "HEAD", "must pin an exact version"),
    ("chart range", GOOD_MULTI_SOURCE, "spec/sources/0/targetRevision", ">=1.2.0 <2.0.0", "must pin an exact version"),
    ("chart wildcard", GOOD_MULTI_SOURCE, "spec/sources/0/targetRevision", "1.2.*", "must pin an exact version"),
    ("chart latest", GOOD_MULTI_SOURCE, "spec/sources/0/targetRevision", "latest", "must pin an exact version"),
    ("$values without ref", GOOD_MULTI_SOURCE, "spec/sources/1/ref", None, "no source has `ref: values`"),
    ("base values missing", GOOD_MULTI_SOURCE, "spec/sources/0/helm/valueFiles", ["$values/gitops/platform/nope/values.yaml"],
     "does not exist in this repository"),
    ("misspelled in sources[]", GOOD_MULTI_SOURCE, "spec/sources/1/targetrevision", "main", "('targetrevision' was unexpected)"),
]


@pytest.mark.parametrize(("name", "base", "path", "value", "expected"), BAD, ids=[b[0] for b in BAD])
def test_bad_fixture_is_caught(name, base, path, value, expected, argocd_schemas):
    found = application_problems(changed(base, path, value, delete=value is None), argocd_schemas)
    assert any(expected in p for p in found), found
