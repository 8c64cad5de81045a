"""`mlops gitops render ENV`: everything ArgoCD would apply for an environment, rendered as ArgoCD renders it.

The bootstrap creates one Application per environment, ``root-<env>``, from
``infra/ansible/roles/argocd/templates/root-app.yaml.j2``; it renders the apps chart (``gitops/apps``)
into the environment's Applications, and each of those renders its source:

- a Helm chart (ours in this repository, or an upstream chart at its pinned version from the chart
  cache, see ``charts.py``) with ``helm template`` exactly as ArgoCD's repo server runs it: the
  Application's release name, destination namespace, value files in order (``$values/...`` from this
  repository), ``valuesObject``, ``parameters``, the cluster's Kubernetes version, the API versions the
  cluster serves, and the chart's CRDs;
- a plain folder of manifests as its YAML files.

Applications are rendered as every sync after the first renders them: with the API versions of all the
CRDs the environment installs.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import jinja2
import yaml

from mlops.core.errors import MlopsError
from mlops.gitops.charts import MissingArtifact, find_chart, helm_binary
from mlops.release.layout import env_dir

# The cluster: k3s v1.31.4+k3s1 (infra/config.py), with ArgoCD's own CRDs installed by the bootstrap.
KUBERNETES_VERSION = "1.31.4"
BOOTSTRAP_API_VERSIONS = ("argoproj.io/v1alpha1", "argoproj.io/v1alpha1/Application", "argoproj.io/v1alpha1/AppProject",
                          "argoproj.io/v1alpha1/ApplicationSet")
ARGOCD_ROLE = Path("infra/ansible/roles/argocd")
# A stand-in for the floating IP's name when rendering offline (TEST-NET-3, RFC 5737).
EXAMPLE_DOMAIN = "203.0.113.10.nip.io"
SYNC_WAVE = "argocd.argoproj.io/sync-wave"


class _KubernetesLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml: CRDs are megabytes
    """YAML as Kubernetes reads it: a bare `=` is a string (PyYAML alone reads it as the obsolete `value` tag)."""


_KubernetesLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:value"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_all(text: str) -> list[dict]:
    """The mapping documents of a YAML stream."""
    return [doc for doc in yaml.load_all(text, Loader=_KubernetesLoader) if isinstance(doc, dict)]


HELM_TEST_HOOKS = {"test", "test-success", "test-failure"}


def applied_by_argocd(doc: dict) -> bool:
    """ArgoCD maps Helm's install/upgrade hooks to its sync hooks, and ignores Helm test hooks."""
    hooks = ((doc.get("metadata") or {}).get("annotations") or {}).get("helm.sh/hook", "")
    return not hooks or not {h.strip() for h in hooks.split(",")} <= HELM_TEST_HOOKS


@dataclass(frozen=True)
class Rendered:
    """One Application and what it applies (a YAML stream); ``missing`` says why it could not be rendered."""

    application: dict
    manifests: str
    missing: str = ""

    @property
    def name(self) -> str:
        return self.application["metadata"]["name"]

    @cached_property
    def documents(self) -> list[dict]:
        """The objects ArgoCD applies (Helm test hooks left out)."""
        return [doc for doc in load_all(self.manifests) if applied_by_argocd(doc)]


def role_defaults(root: Path) -> dict:
    return yaml.safe_load((root / ARGOCD_ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))


def root_application(root: Path, env: str, domain: str = EXAMPLE_DOMAIN) -> dict:
    """``root-<env>`` exactly as the bootstrap renders it (the role's defaults, this environment and domain)."""
    env_dir(root, env)  # an unknown environment is one clear error
    defaults = role_defaults(root)
    variables = {**defaults, "argocd_environment": env, "argocd_public_host": domain}
    template = (root / ARGOCD_ROLE / "templates" / "root-app.yaml.j2").read_text(encoding="utf-8")
    text = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True).from_string(template).render(**variables)
    return yaml.safe_load(text)


def sources(app: dict) -> list[dict]:
    spec = app["spec"]
    return list(spec.get("sources") or [spec["source"]])


def _is_this_repo(url: str, root: Path) -> bool:
    def plain(u: str) -> str:
        u = u.strip().rstrip("/")
        return (u[:-4] if u.endswith(".git") else u).lower()
    return plain(url) == plain(role_defaults(root)["argocd_repo_url"])


def _value_file(root: Path, chart: Path, name: str, refs: dict[str, dict]) -> Path:
    if name.startswith("$"):
        ref, _, rest = name[1:].partition("/")
        if ref not in refs or not _is_this_repo(refs[ref]["repoURL"], root):
            raise MlopsError(f"value file {name}: no source with `ref: {ref}` points at this repository")
        return root / rest
    return (chart / name).resolve()


def helm_template(root: Path, app: dict, source: dict, refs: dict[str, dict], api_versions: list[str]) -> str:
    """`helm template` of one Helm source, with the flags ArgoCD's repo server passes."""
    name = app["metadata"]["name"]
    if "chart" in source:
        chart = find_chart(source["chart"], str(source["targetRevision"]), source["repoURL"])
    else:
        chart = root / source["path"]
    helm = source.get("helm", {})
    namespace = helm.get("namespace") or app["spec"]["destination"].get("namespace", "default")
    command = [helm_binary(), "template", helm.get("releaseName", name), str(chart), "--namespace", namespace,
               "--kube-version", helm.get("kubeVersion", KUBERNETES_VERSION)]
    if not helm.get("skipCrds"):
        command.append("--include-crds")
    if helm.get("skipTests"):
        command.append("--skip-tests")
    if helm.get("skipSchemaValidation"):
        command.append("--skip-schema-validation")
    for version in helm.get("apiVersions") or api_versions:
        command += ["--api-versions", version]
    with tempfile.TemporaryDirectory(prefix="render-") as scratch:
        for value_file in helm.get("valueFiles", []):
            path = _value_file(root, chart, value_file, refs)
            if path.is_file():
                command += ["--values", str(path)]
            elif not helm.get("ignoreMissingValueFiles"):
                raise MlopsError(f"{name}: value file {value_file} does not exist ({path})")
        inline = helm.get("valuesObject") or (yaml.safe_load(helm["values"]) if helm.get("values") else None)
        if inline:
            (Path(scratch) / "values.yaml").write_text(yaml.safe_dump(inline), encoding="utf-8")
            command += ["--values", str(Path(scratch) / "values.yaml")]
        for parameter in helm.get("parameters", []):
            flag = "--set-string" if parameter.get("forceString") else "--set"
            command += [flag, f"{parameter['name']}={parameter.get('value', '')}"]
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
        reason = next((line for line in lines if line.startswith("Error:")), lines[-1])
        raise MlopsError(f"helm template of {name} failed: {reason.removeprefix('Error: ')}")
    return done.stdout


def directory_manifests(root: Path, source: dict) -> str:
    """A plain-manifest source: ArgoCD applies every YAML file of the folder (not recursing by default)."""
    folder = root / source["path"]
    pattern = "**/*.yaml" if source.get("directory", {}).get("recurse") else "*.yaml"
    return "".join(f"---\n# Source: {path.relative_to(root)}\n{path.read_text(encoding='utf-8').rstrip()}\n"
                   for path in sorted(folder.glob(pattern)))


def render_application(root: Path, app: dict, api_versions: list[str]) -> str:
    """What one Application applies."""
    parts = []
    all_sources = sources(app)
    refs = {s["ref"]: s for s in all_sources if s.get("ref")}
    for source in all_sources:
        if "chart" in source:
            parts.append(helm_template(root, app, source, refs, api_versions))
        elif "path" not in source:
            continue  # a `ref: values` source only lends its files to the chart beside it
        elif not _is_this_repo(source["repoURL"], root):
            raise MlopsError(f"{app['metadata']['name']}: source {source['repoURL']} is neither this repository nor a pinned chart")
        elif (root / source["path"] / "Chart.yaml").is_file():
            parts.append(helm_template(root, app, source, refs, api_versions))
        else:
            parts.append(directory_manifests(root, source))
    return "".join(parts)


def crd_api_versions(docs: list[dict]) -> list[str]:
    """`group/version` and `group/version/Kind` of every CRD in ``docs`` (what the cluster then serves)."""
    found = []
    for doc in docs:
        if doc.get("kind") == "CustomResourceDefinition":
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                if version.get("served", True):
                    found += [f"{group}/{version['name']}", f"{group}/{version['name']}/{kind}"]
    return found


def wave(app: dict) -> int:
    return int(app["metadata"].get("annotations", {}).get(SYNC_WAVE, "0"))


def render_environment(root: Path, env: str, domain: str = EXAMPLE_DOMAIN, allow_missing: bool = False) -> list[Rendered]:
    """The root Application first, then every Application it creates, in sync-wave order, each rendered as every
    sync after the first renders it: seeing the API versions of every CRD the environment installs (charts turn
    on objects such as ServiceMonitors only when their CRD exists). With ``allow_missing``, an Application whose
    chart is not in the cache is returned empty, saying so."""
    root_app = root_application(root, env, domain)
    rendered = [Rendered(root_app, render_application(root, root_app, list(BOOTSTRAP_API_VERSIONS)))]
    children = sorted((doc for doc in rendered[0].documents if doc.get("kind") == "Application"),
                      key=lambda a: (wave(a), a["metadata"]["name"]))
    if not children:
        raise MlopsError(f"root-{env} renders no Application: check gitops/envs/{env}/apps.yaml")

    def each(api_versions: list[str]) -> list[Rendered]:
        results = []
        for app in children:
            try:
                results.append(Rendered(app, render_application(root, app, api_versions)))
            except MissingArtifact as e:
                if not allow_missing:
                    raise
                results.append(Rendered(app, "", missing=str(e)))
        return results

    first_sync = each(list(BOOTSTRAP_API_VERSIONS))  # what the CRDs are; a CRD's presence depends on no API version
    served = list(BOOTSTRAP_API_VERSIONS) + [v for result in first_sync for v in crd_api_versions(result.documents)]
    return rendered + each(served)


def render(root: Path, env: str, domain: str = EXAMPLE_DOMAIN) -> str:
    """One YAML stream: the root Application, then what each Application applies, each under a header."""
    parts = []
    for index, result in enumerate(render_environment(root, env, domain)):
        if index == 0:
            parts.append("---\n# The root Application, as the bootstrap creates it\n"
                         + yaml.safe_dump(result.application, sort_keys=False))
        parts.append(f"---\n# Application {result.name} applies:\n" + result.manifests)
    return "".join(parts)
