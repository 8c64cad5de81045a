"""What the rendered manifests expect to find in the cluster, against what the bootstrap creates there.

Every Secret a pod, an Argo template or an operator's resource reads (by name and key, in its namespace) must be
one the bootstrap creates from Pulumi secret config (infra/program.py: cluster_secrets) or one a chart renders;
every namespace an object lands in must be created by the bootstrap or by its Application (CreateNamespace=true).
"""

from __future__ import annotations

import re

import pytest
import yaml
from sqlalchemy.engine import make_url

from infra.program import cluster_secrets, required_secrets
from mlops.gitops.render import Rendered
from mlops.release.layout import ENVIRONMENTS
from support.gitops import application, promoted_service, rendered
from support.paths import ROOT

POD_OWNERS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet")
# Namespaces k3s and the bootstrap make before ArgoCD syncs anything (infra/ansible/roles/argocd, volumes).
CLUSTER_NAMESPACES = {"default", "kube-system", "argocd", "qa-storage"}


def namespace_of(doc: dict, result: Rendered) -> str:
    return doc.get("metadata", {}).get("namespace") or result.application["spec"]["destination"].get("namespace", "default")


def pod_secret_refs(spec: dict) -> list[tuple[str, str | None]]:
    """(secret, key or None for the whole Secret) a pod spec reads, leaving out optional ones."""
    refs = []
    for container in spec.get("initContainers", []) + spec.get("containers", []):
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref and not ref.get("optional"):
                refs.append((ref["name"], ref["key"]))
        refs += [(e["secretRef"]["name"], None) for e in container.get("envFrom", [])
                 if "secretRef" in e and not e["secretRef"].get("optional")]
    for volume in spec.get("volumes", []):
        secret = volume.get("secret")
        if secret and not secret.get("optional"):
            refs += [(secret["secretName"], item["key"]) for item in secret.get("items", [])] or [(secret["secretName"], None)]
        for source in volume.get("projected", {}).get("sources", []):
            if "secret" in source and not source["secret"].get("optional"):
                refs.append((source["secret"]["name"], None))
    return refs


def secret_refs(doc: dict) -> list[tuple[str, str | None]]:
    kind = doc.get("kind")
    if kind in POD_OWNERS:
        return pod_secret_refs(doc["spec"]["template"]["spec"])
    if kind == "CronJob":
        return pod_secret_refs(doc["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    if kind in ("Alertmanager", "Prometheus"):
        return [(name, None) for name in doc["spec"].get("secrets", [])]
    if kind == "WorkflowTemplate":
        refs = []
        for template in doc["spec"]["templates"]:
            if "container" in template:
                refs += pod_secret_refs({"containers": [template["container"]], "volumes": template.get("volumes", [])})
            for artifact in template.get("inputs", {}).get("artifacts", []):
                if key := artifact.get("git", {}).get("sshPrivateKeySecret"):
                    refs.append((key["name"], key["key"]))
        return refs
    if kind == "ConfigMap" and "workflows.argoproj.io/default-artifact-repository" in doc["metadata"].get("annotations", {}):
        refs = []
        for text in doc["data"].values():
            s3 = yaml.safe_load(text).get("s3", {})
            refs += [(s3[field]["name"], s3[field]["key"]) for field in ("accessKeySecret", "secretKeySecret") if field in s3]
        return refs
    return []


def bootstrap_secrets(env: str) -> list[dict]:
    return cluster_secrets(env, {name: "x" for name in required_secrets(env)})


def available_secrets(env: str, made: list[dict]) -> dict[tuple[str, str], set[str]]:
    """(namespace, name) -> keys, of every Secret the bootstrap makes (``made``) and every one a chart renders."""
    found = {(s["namespace"], s["name"]): set(s["data"]) for s in made}
    for result in rendered(env):
        for doc in result.documents:
            if doc["kind"] == "Secret":
                keys = set(doc.get("data") or {}) | set(doc.get("stringData") or {})
                found[(namespace_of(doc, result), doc["metadata"]["name"])] = keys
            elif doc["kind"] == "Job":  # kube-webhook-certgen: a hook Job that makes the webhook's TLS Secret
                for container in doc["spec"]["template"]["spec"]["containers"]:
                    for arg in container.get("args", []):
                        if arg.startswith("--secret-name="):
                            found[(namespace_of(doc, result), arg.split("=", 1)[1])] = {"ca", "cert", "key"}
    return found


def unmet(env: str, made: list[dict]) -> list[str]:
    have = available_secrets(env, made)
    problems = []
    for result in rendered(env):
        for doc in result.documents:
            namespace = namespace_of(doc, result)
            for name, key in secret_refs(doc):
                keys = have.get((namespace, name))
                if keys is None:
                    problems.append(f"{doc['kind']}/{doc['metadata']['name']}: Secret {namespace}/{name} is made by nobody")
                elif key is not None and key not in keys:
                    problems.append(f"{doc['kind']}/{doc['metadata']['name']}: Secret {namespace}/{name} has no key {key!r} "
                                    f"(it has {sorted(keys)})")
    return problems


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_secret_read_is_made_with_that_key(env: str):
    assert unmet(env, bootstrap_secrets(env)) == []


def test_the_secret_check_catches_a_missing_key_and_a_missing_secret():
    made = bootstrap_secrets("staging")
    without_minio = [s for s in made if (s["namespace"], s["name"]) != ("mlflow", "minio")]
    assert any("Secret mlflow/minio is made by nobody" in p for p in unmet("staging", without_minio))
    renamed = [{**s, "data": {"AWS_ACCESS_KEY": "x", "AWS_SECRET_ACCESS_KEY": "y"}} if s["name"] == "mlops-pipeline-s3" else s
               for s in made]
    assert any("Secret argo/mlops-pipeline-s3 has no key 'AWS_ACCESS_KEY_ID'" in p for p in unmet("staging", renamed))


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_namespace_is_made_before_its_objects(env: str):
    results = rendered(env)
    made = CLUSTER_NAMESPACES | {s["namespace"] for s in bootstrap_secrets(env)}
    for result in results[1:]:
        if "CreateNamespace=true" in result.application["spec"].get("syncPolicy", {}).get("syncOptions", []):
            made.add(result.application["spec"]["destination"]["namespace"])
        made |= {d["metadata"]["name"] for d in result.documents if d["kind"] == "Namespace"}
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "ClusterIssuer", "Namespace",
                      "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "StorageClass", "PriorityClass"}
    for result in results[1:]:
        wanted = {namespace_of(d, result) for d in result.documents if d["kind"] not in cluster_scoped}
        assert wanted <= made, f"{result.name}: objects in {sorted(wanted - made)}, which nothing creates"


OUR_IMAGE = re.compile(r"ghcr\.io/transformers-qa/([\w-]+):.*")


def containers(doc: dict) -> list[dict]:
    if doc.get("kind") in POD_OWNERS:
        spec = doc["spec"]["template"]["spec"]
        return spec.get("initContainers", []) + spec.get("containers", [])
    if doc.get("kind") == "WorkflowTemplate":
        return [t["container"] for t in doc["spec"]["templates"] if "container" in t]
    return []


def database_drivers(env: str) -> set[tuple[str, str]]:
    """(image, driver) for every container of ours given a database URL from a Secret the bootstrap makes, with a
    problem raised for one whose image's lock lacks that URL's driver or SQLAlchemy."""
    urls = {(s["namespace"], s["name"], key): make_url(value) for s in bootstrap_secrets(env) for key, value in s["data"].items()
            if re.match(r"(postgresql|sqlite)[+:]", value)}
    service = application(env, f"transformers-qa-{env}").application["spec"]["destination"]["namespace"]
    placed = [(doc, namespace_of(doc, result)) for result in rendered(env) for doc in result.documents]
    placed += [(doc, doc["metadata"].get("namespace", service)) for doc in promoted_service(env)]  # its pods run once promoted
    found = set()
    for doc, namespace in placed:
        for container in containers(doc):
            image = OUR_IMAGE.fullmatch(container.get("image", ""))
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef") or {}
                url = urls.get((namespace, ref.get("name"), ref.get("key")))
                if url is None:
                    continue
                assert image, f"{doc['metadata']['name']}: {container['image']} is given a database URL; which driver does it have?"
                lock = (ROOT / "images" / image.group(1) / "requirements.lock").read_text()
                for distribution in ("sqlalchemy", url.get_driver_name()):
                    assert re.search(rf"^{distribution}==", lock, re.M), (
                        f"{doc['metadata']['name']}: images/{image.group(1)} opens {url.drivername} URLs without {distribution} in its lock")
                found.add((image.group(1), url.get_driver_name()))
    return found


def test_every_image_given_a_database_url_has_its_driver():
    assert database_drivers("staging") == {("api", "psycopg"), ("trainer", "psycopg")}  # the API, and the release's data step
    assert database_drivers("prod") == {("api", "psycopg")}
