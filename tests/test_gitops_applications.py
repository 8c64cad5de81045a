"""Every ArgoCD Application we ship, checked offline: the Application CRD's schema (vendored, made strict) plus our own rules.

Collected: every `kind: Application` document in gitops/envs/*/apps/*.yaml (discovered, not listed) and the root
Application the bootstrap renders from infra/ansible/roles/argocd/templates/root-app.yaml.j2, once per environment.
Each rule has a failing fixture below, so a check that can never fail is caught too.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jinja2
import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENVS = ROOT / "gitops" / "envs"
SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "argocd-application-spec-0252c02d.json"
ROLE = ROOT / "infra" / "ansible" / "roles" / "argocd"
ROOT_APP_TEMPLATE = ROLE / "templates" / "root-app.yaml.j2"
ROLE_DEFAULTS = ROLE / "defaults" / "main.yml"

API_VERSION = "argoproj.io/v1alpha1"
APP_NAMESPACE = "argocd"
SYNC_WAVE = "argocd.argoproj.io/sync-wave"
# An exact chart version: 1.2.3 (optionally v1.2.3, a -prerelease and a +build); no ranges, no `*`, no `latest`.
EXACT_CHART_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
INTEGER_STRING = re.compile(r"^-?\d+$")


def this_repo_url() -> str:
    return yaml.safe_load(ROLE_DEFAULTS.read_text())["argocd_repo_url"]


def normalize_repo(url: str) -> str:
    url = url.strip().rstrip("/")
    return url[:-4] if url.endswith(".git") else url


def is_this_repo(url: str | None) -> bool:
    return bool(url) and normalize_repo(url).lower() == normalize_repo(this_repo_url()).lower()


def environments() -> list[str]:
    return sorted(p.name for p in ENVS.iterdir() if (p / "apps").is_dir())


def render_root_app(environment: str, **overrides: str) -> dict:
    """The root Application exactly as the bootstrap renders it (role defaults, this environment)."""
    defaults = yaml.safe_load(ROLE_DEFAULTS.read_text())
    variables = {
        "argocd_environment": environment,
        "argocd_repo_url": defaults["argocd_repo_url"],
        "argocd_revision": defaults["argocd_revision"],
        **overrides,
    }
    template = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True).from_string(ROOT_APP_TEMPLATE.read_text())
    docs = [d for d in yaml.safe_load_all(template.render(**variables)) if d]
    assert len(docs) == 1, f"root-app.yaml.j2 should render exactly one document, got {len(docs)}"
    return docs[0]


def collect_applications() -> list[tuple[str, str, dict]]:
    """(label, environment, document) for every Application: the env folders' files and each env's root app."""
    found = []
    for environment in environments():
        for path in sorted((ENVS / environment / "apps").glob("*.yaml")):
            for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
                if isinstance(doc, dict) and doc.get("kind") == "Application":
                    found.append((f"{path.relative_to(ROOT)}#{index}", environment, doc))
        found.append((f"{ROOT_APP_TEMPLATE.relative_to(ROOT)}[{environment}]", environment, render_root_app(environment)))
    return found


APPLICATIONS = collect_applications()


def spec_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


VALIDATOR = spec_validator()


def schema_problem(spec: object) -> str | None:
    """The first schema error (by path) as 'spec.a.b: message', or None."""
    errors = sorted(VALIDATOR.iter_errors(spec), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return None
    error = errors[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"spec{where}: {error.message}"


def sources_of(spec: dict) -> list[tuple[str, dict]]:
    if isinstance(spec.get("sources"), list):
        return [(f"spec.sources[{i}]", s) for i, s in enumerate(spec["sources"]) if isinstance(s, dict)]
    if isinstance(spec.get("source"), dict):
        return [("spec.source", spec["source"])]
    return []


def inside_repo(path: Path) -> bool:
    return path.resolve().is_relative_to(ROOT.resolve())


def source_problems(spec: dict) -> list[str]:
    problems = []
    sources = sources_of(spec)
    refs = {s["ref"]: s for _, s in sources if s.get("ref")}
    for where, source in sources:
        chart, revision = source.get("chart"), source.get("targetRevision")
        if chart and not (isinstance(revision, str) and EXACT_CHART_VERSION.match(revision)):
            problems.append(f"{where}: chart {chart!r} must pin an exact version, got targetRevision {revision!r}")
        local = is_this_repo(source.get("repoURL"))
        path = source.get("path")
        if local and path is not None:
            if not (ROOT / path).is_dir() or not inside_repo(ROOT / path):
                problems.append(f"{where}: path {path!r} does not exist in this repository")
        helm = source.get("helm") or {}
        for value_file in helm.get("valueFiles") or []:
            if value_file.startswith("$"):
                ref, _, rest = value_file[1:].partition("/")
                if ref not in refs:
                    problems.append(f"{where}: valueFile {value_file!r} refers to ${ref} but no source has `ref: {ref}`")
                elif is_this_repo(refs[ref].get("repoURL")):
                    target = ROOT / rest
                    if not target.is_file() or not inside_repo(target):
                        problems.append(f"{where}: valueFile {value_file!r} does not exist in this repository")
            elif local and path is not None:
                target = ROOT / path / value_file
                if not target.is_file() or not inside_repo(target):
                    problems.append(f"{where}: valueFile {value_file!r} (relative to {path}) does not exist in this repository")
    return problems


def application_problems(app: object) -> list[str]:
    """Everything wrong with one Application document; [] when it is fine."""
    if not isinstance(app, dict):
        return ["not a mapping"]
    problems = []
    if app.get("apiVersion") != API_VERSION:
        problems.append(f"apiVersion must be {API_VERSION}, got {app.get('apiVersion')!r}")
    if app.get("kind") != "Application":
        problems.append(f"kind must be Application, got {app.get('kind')!r}")
    metadata = app.get("metadata") or {}
    if not metadata.get("name"):
        problems.append("metadata.name is missing")
    if metadata.get("namespace") != APP_NAMESPACE:
        problems.append(f"metadata.namespace must be {APP_NAMESPACE}, got {metadata.get('namespace')!r}")
    wave = (metadata.get("annotations") or {}).get(SYNC_WAVE)
    if wave is not None and not (isinstance(wave, str) and INTEGER_STRING.match(wave)):
        problems.append(f"metadata.annotations[{SYNC_WAVE}] must be an integer string, got {wave!r}")
    spec = app.get("spec")
    if not isinstance(spec, dict):
        return problems + ["spec is missing"]
    problem = schema_problem(spec)
    if problem:
        problems.append(problem)
    if not sources_of(spec) and "sourceHydrator" not in spec:
        problems.append("spec has neither source nor sources")
    return problems + source_problems(spec)


# --- the real Applications -------------------------------------------------------------------------------------


def test_applications_are_discovered():
    labels = [label for label, _, _ in APPLICATIONS]
    for environment in environments():
        assert any(label.startswith(f"gitops/envs/{environment}/apps/") for label in labels), environment
        assert any(label.endswith(f"[{environment}]") for label in labels), environment
    assert environments(), "no gitops/envs/*/apps folders"


@pytest.mark.parametrize("label,environment,app", APPLICATIONS, ids=[label for label, _, _ in APPLICATIONS])
def test_application_is_valid(label, environment, app):
    assert application_problems(app) == [], label


def duplicate_names(applications: list[tuple[str, str, dict]], environment: str) -> list[str]:
    names = [(app.get("metadata") or {}).get("name") for _, env, app in applications if env == environment]
    return sorted({n for n in names if names.count(n) > 1})


@pytest.mark.parametrize("environment", environments())
def test_application_names_are_unique_per_environment(environment):
    duplicates = duplicate_names(APPLICATIONS, environment)
    assert not duplicates, f"{environment}: Application names used more than once: {duplicates}"


def test_root_app_points_at_its_environment():
    for environment in environments():
        app = render_root_app(environment)
        assert app["metadata"]["name"] == f"root-{environment}"
        assert app["spec"]["source"]["path"] == f"gitops/envs/{environment}/apps"


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
        "syncPolicy": {"automated": {"prune": True, "selfHeal": True}, "syncOptions": ["CreateNamespace=false"]},
    },
}

# An upstream chart with its values from this repository (the platform Applications' shape).
GOOD_MULTI_SOURCE = copy.deepcopy(GOOD)
GOOD_MULTI_SOURCE["metadata"].update(name="platform-fixture", annotations={SYNC_WAVE: "0"})
del GOOD_MULTI_SOURCE["spec"]["source"]
GOOD_MULTI_SOURCE["spec"]["sources"] = [
    {"repoURL": "https://charts.example.com", "chart": "some-chart", "targetRevision": "1.2.3",
     "helm": {"valueFiles": ["$values/gitops/envs/dev/values/service.yaml"]}},
    {"repoURL": "https://github.com/transformers-qa/transformers-qa", "targetRevision": "main", "ref": "values"},
]


def mutated(base: dict, change) -> dict:
    app = copy.deepcopy(base)
    change(app)
    return app


def test_good_fixtures_pass():
    assert application_problems(GOOD) == []
    assert application_problems(GOOD_MULTI_SOURCE) == []


def _set(path: str, value):
    def change(app):
        node = app
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(keys[-1]) if isinstance(node, list) else keys[-1]] = value

    return change


def _delete(path: str):
    def change(app):
        node = app
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        del node[keys[-1]]

    return change


BAD = [
    ("misspelled selfheal", GOOD, _set("spec.syncPolicy.automated.selfheal", True), "spec.syncPolicy.automated: Additional properties"),
    ("misspelled helm valuesFiles", GOOD, _set("spec.source.helm.valuesFiles", ["x.yaml"]), "spec.source.helm: Additional properties"),
    ("unknown top-level spec field", GOOD, _set("spec.syncpolicy", {}), "spec: Additional properties"),
    ("wrong type", GOOD, _set("spec.revisionHistoryLimit", "10"), "spec.revisionHistoryLimit: '10' is not of type 'integer'"),
    ("missing destination", GOOD, _delete("spec.destination"), "'destination' is a required property"),
    ("missing project", GOOD, _delete("spec.project"), "'project' is a required property"),
    ("source without repoURL", GOOD, _delete("spec.source.repoURL"), "spec.source: 'repoURL' is a required property"),
    ("wrong apiVersion", GOOD, _set("apiVersion", "argoproj.io/v1beta1"), "apiVersion must be"),
    ("no name", GOOD, _delete("metadata.name"), "metadata.name is missing"),
    ("wrong namespace", GOOD, _set("metadata.namespace", "default"), "metadata.namespace must be argocd"),
    ("sync-wave not integer", GOOD, lambda app: app["metadata"]["annotations"].update({SYNC_WAVE: "first"}), "must be an integer string"),
    ("sync-wave as YAML int", GOOD, lambda app: app["metadata"]["annotations"].update({SYNC_WAVE: 1}), "must be an integer string"),
    ("path missing in repo", GOOD, _set("spec.source.path", "gitops/charts/does-not-exist"), "path 'gitops/charts/does-not-exist' does not exist"),
    ("path escaping repo", GOOD, _set("spec.source.path", ".."), "path '..' does not exist"),
    ("valueFile missing", GOOD, _set("spec.source.helm.valueFiles", ["../../envs/dev/values/nope.yaml"]), "does not exist in this repository"),
    ("chart HEAD", GOOD_MULTI_SOURCE, _set("spec.sources.0.targetRevision", "HEAD"), "must pin an exact version"),
    ("chart range", GOOD_MULTI_SOURCE, _set("spec.sources.0.targetRevision", ">=1.2.0 <2.0.0"), "must pin an exact version"),
    ("chart wildcard", GOOD_MULTI_SOURCE, _set("spec.sources.0.targetRevision", "1.2.*"), "must pin an exact version"),
    ("chart star", GOOD_MULTI_SOURCE, _set("spec.sources.0.targetRevision", "*"), "must pin an exact version"),
    ("chart latest", GOOD_MULTI_SOURCE, _set("spec.sources.0.targetRevision", "latest"), "must pin an exact version"),
    ("chart no revision", GOOD_MULTI_SOURCE, _delete("spec.sources.0.targetRevision"), "must pin an exact version"),
    ("$values without ref", GOOD_MULTI_SOURCE, _delete("spec.sources.1.ref"), "no source has `ref: values`"),
    (
        "$values file missing",
        GOOD_MULTI_SOURCE,
        _set("spec.sources.0.helm.valueFiles", ["$values/gitops/envs/dev/values/nope.yaml"]),
        "does not exist in this repository",
    ),
    ("misspelled in sources[]", GOOD_MULTI_SOURCE, _set("spec.sources.1.targetrevision", "main"), "spec.sources[1]: Additional properties"),
    ("no source at all", GOOD, _delete("spec.source"), "neither source nor sources"),
]


@pytest.mark.parametrize("name,base,change,expected", BAD, ids=[b[0] for b in BAD])
def test_bad_fixture_is_caught(name, base, change, expected):
    problems = application_problems(mutated(base, change))
    assert any(expected in p for p in problems), problems


def test_duplicate_names_are_caught():
    apps = [("a.yaml", "dev", GOOD), ("b.yaml", "dev", copy.deepcopy(GOOD)), ("c.yaml", "prod", copy.deepcopy(GOOD))]
    assert duplicate_names(apps, "dev") == ["fixture"]
    assert duplicate_names(apps, "prod") == []


def test_schema_is_strict():
    """additionalProperties: false on every object with properties, except where upstream keeps unknown fields."""
    schema = json.loads(SCHEMA_FILE.read_text())
    loose = []

    def walk(node, where):
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
                loose.append(where)
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}/{index}")

    walk(schema, "#")
    assert not loose, loose
    assert schema_problem({"project": "p", "destination": {}, "source": {"repoURL": "x", "helm": {"valuesObject": {"any": {"thing": 1}}}}}) is None
