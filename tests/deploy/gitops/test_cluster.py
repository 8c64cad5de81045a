"""What each environment asks of its cluster, against the nodes its Pulumi stack reserves.

The manifests are the rendered ones (tests/support/gitops.py), with the service promoted (model version and image tags
set), since an environment's first promotion is when its Triton and API pods appear.
"""

from __future__ import annotations

import json
import math

import pytest
import yaml

from infra.sites import SITES, NodeType
from mlops.release.layout import ENVIRONMENTS
from support.gitops import ROOT, documents, promoted_service

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
# k3s's own pods (CoreDNS, Traefik, metrics-server, local-path provisioner) and the OS: what is left for ours.
USABLE = 0.85


def stack(env: str) -> dict:
    return yaml.safe_load((ROOT / f"Pulumi.{env}.yaml").read_text())["config"]


def node_groups(env: str) -> list[dict]:
    return stack(env)["transformers-qa:node_groups"]


def hardware(env: str, group: dict) -> NodeType:
    """One node of the group, as the stack's site has it (infra/sites.py, with the sources of each figure)."""
    return SITES[stack(env)["transformers-qa:site"]].hardware[group.get("node_type") or group["flavor"]]


def promoted(env: str) -> list[dict]:
    """Everything ``env`` runs once a promotion set its model version and image tags."""
    ours = promoted_service(env)
    return [d for d in documents(env) if d.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/instance") != "transformers-qa"] + ours


def quantity(value) -> float:
    """A Kubernetes quantity as a number (cores, bytes)."""
    text = str(value)
    for suffix, factor in (("Ki", 2**10), ("Mi", 2**20), ("Gi", 2**30), ("Ti", 2**40), ("m", 1e-3), ("k", 1e3), ("M", 1e6), ("G", 1e9)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def pod_requests(spec: dict, resource: str) -> float:
    """What the scheduler reserves for a pod: the larger of its containers' sum and its biggest init container."""
    def of(container: dict) -> float:
        return quantity(container.get("resources", {}).get("requests", {}).get(resource, 0))
    return max(sum(of(c) for c in spec["containers"]), max((of(c) for c in spec.get("initContainers", [])), default=0))


def runs_on(spec: dict) -> str | None:
    """The role a pod is pinned to (nodeSelector or required affinity on transformers-qa/role), None if any node."""
    if role := spec.get("nodeSelector", {}).get("transformers-qa/role"):
        return role
    terms = (spec.get("affinity", {}).get("nodeAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution", {})
             .get("nodeSelectorTerms", []))
    roles = [e["values"][0] for t in terms for e in t.get("matchExpressions", []) if e["key"] == "transformers-qa/role"]
    return roles[0] if roles else None


def demand(env: str, resource: str) -> float:
    """The cluster-wide requests of ``resource`` with every workload at its replica count (DaemonSets on each node
    they may run on), plus the Prometheus and Alertmanager pods the operator creates."""
    groups = node_groups(env)
    total = 0.0
    for doc in promoted(env):
        if doc["kind"] in WORKLOADS:
            spec = doc["spec"]["template"]["spec"]
            if doc["kind"] == "DaemonSet":
                role = runs_on(spec)
                copies = sum(g.get("count", 1) for g in groups if role in (None, g["role"]))
            else:
                copies = doc["spec"].get("replicas", 1)
            total += copies * pod_requests(spec, resource)
        elif doc["kind"] in ("Prometheus", "Alertmanager"):
            total += doc["spec"].get("replicas", 1) * quantity(doc["spec"].get("resources", {}).get("requests", {}).get(resource, 0))
    return total


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_requests_fit_the_reserved_nodes(env: str):
    groups = node_groups(env)
    cpu = sum(g.get("count", 1) * hardware(env, g).cpus for g in groups) * USABLE
    memory = sum(g.get("count", 1) * hardware(env, g).memory_gib for g in groups) * 2**30 * USABLE
    assert demand(env, "cpu") <= cpu, f"{env}: {demand(env, 'cpu'):.1f} CPUs requested, {cpu:.1f} usable"
    assert demand(env, "memory") <= memory, f"{env}: {demand(env, 'memory') / 2**30:.1f} GiB requested, {memory / 2**30:.1f} usable"


def gpu_capacity(env: str) -> int:
    """nvidia.com/gpu the device plugin advertises: physical GPUs x time-slice replicas (its rendered config)."""
    physical = sum(g.get("count", 1) * hardware(env, g).gpus for g in node_groups(env))
    configs = [d for d in documents(env, "ConfigMap") if d["metadata"]["name"] == "nvidia-device-plugin-configs"]
    replicas = 1
    for config in configs:
        for text in config["data"].values():
            sharing = yaml.safe_load(text).get("sharing", {}).get("timeSlicing", {})
            replicas = max(replicas, *(r["replicas"] for r in sharing.get("resources", []) if r["name"] == "nvidia.com/gpu"))
    return physical * replicas


def gpu_limits(spec: dict) -> int:
    return sum(int(c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0)) for c in spec["containers"])


def peak_gpus(env: str) -> int:
    """GPUs in use at the worst moment: every Deployment mid rolling update (its surge pods beside the old ones)
    while a training run holds its GPUs."""
    peak = 0
    for doc in promoted(env):
        if doc["kind"] == "Deployment" and (per_pod := gpu_limits(doc["spec"]["template"]["spec"])):
            replicas = doc["spec"].get("replicas", 1)
            strategy = doc["spec"].get("strategy", {})
            surge = 0 if strategy.get("type") == "Recreate" else math.ceil(replicas * 0.25)  # maxSurge default 25%
            peak += (replicas + surge) * per_pod
    for template in documents(env, "WorkflowTemplate"):
        defaults = {p["name"]: p.get("value") for p in template["spec"].get("arguments", {}).get("parameters", [])}
        for step in template["spec"]["templates"]:
            patch = json.loads(step.get("podSpecPatch", "{}"))  # Argo merges it into the pod it creates
            for container in [step.get("container", {}), *patch.get("containers", [])]:
                limit = container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
                if limit is not None:
                    peak += int(str(limit).replace("{{workflow.parameters.gpus}}", str(defaults.get("gpus", 1))))
    return peak


@pytest.mark.parametrize("env", [e for e in ENVIRONMENTS if e != "dev"])
def test_gpu_requests_fit_even_during_a_rollout_and_a_training_run(env: str):
    assert peak_gpus(env) <= gpu_capacity(env), f"{env}: {peak_gpus(env)} GPUs wanted at once, {gpu_capacity(env)} advertised"


def test_the_gpu_check_would_catch_an_unshared_staging_gpu():
    """Without time-slicing, staging's one GPU cannot hold the new Triton pod beside the old one."""
    physical = sum(g.get("count", 1) * hardware("staging", g).gpus for g in node_groups("staging"))
    assert physical < peak_gpus("staging") <= gpu_capacity("staging")


def test_dev_runs_no_gpu():
    assert peak_gpus("dev") == 0 and not any(g["role"] == "gpu" for g in node_groups("dev"))


def test_the_quantity_parser():
    assert quantity("500m") == 0.5 and quantity("2Gi") == 2 * 2**30 and quantity(2) == 2.0 and quantity("1G") == 1e9


def volumes(env: str) -> dict[str, int]:
    """The stack's persistent volumes: name -> size in GB (Pulumi.<env>.yaml)."""
    return {v["name"]: v["size_gb"] for v in stack(env).get("transformers-qa:volumes", [])}


def claims(env: str) -> list[tuple[str, dict, dict]]:
    """(owner, claim spec, the pod spec that mounts it) of every PersistentVolumeClaim env creates: plain PVCs
    (with the workload that mounts them), StatefulSet templates, and the Prometheus/Alertmanager storage specs."""
    docs = promoted(env)
    found = []
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] == "PersistentVolumeClaim":
            users = [d["spec"]["template"]["spec"] for d in docs if d["kind"] in WORKLOADS and any(
                v.get("persistentVolumeClaim", {}).get("claimName") == doc["metadata"]["name"]
                for v in d["spec"]["template"]["spec"].get("volumes", []))]
            found += [(name, doc["spec"], spec) for spec in users]
        elif doc["kind"] == "StatefulSet":
            found += [(name, t["spec"], doc["spec"]["template"]["spec"]) for t in doc["spec"].get("volumeClaimTemplates", [])]
        elif doc["kind"] in ("Prometheus", "Alertmanager"):
            template = doc["spec"].get("storage", {}).get("volumeClaimTemplate")
            if template:
                found.append((name, template["spec"], doc["spec"]))
    return found


# What may stay on a node's own disk (k3s local-path): caches and state that is rebuilt from git or metrics.
DISPOSABLE = {"PersistentVolumeClaim/kube-prometheus-stack-grafana", "Alertmanager/kube-prometheus-stack-alertmanager"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_stateful_charts_store_on_the_stacks_volumes(env: str):
    """Every claim of PostgreSQL, MinIO and Prometheus lands on the StorageClass of one of the stack's volumes
    (qa-<volume>, a folder on the volume mounted on the control node), no bigger than the volume, from a pod
    pinned to the control node; only disposable state uses the node's disk."""
    sizes = volumes(env)
    seen = set()
    for owner, claim, pod in claims(env):
        storage_class = claim.get("storageClassName")
        if owner in DISPOSABLE or (env == "dev" and owner.startswith("Prometheus/")):
            assert storage_class in (None, "local-path"), owner
            continue
        assert storage_class and storage_class.startswith("qa-"), f"{owner}: storageClassName {storage_class!r}"
        volume = storage_class.removeprefix("qa-")
        assert volume in sizes, f"{owner}: {storage_class} but {env}'s stack has no volume {volume!r} ({sorted(sizes)})"
        assert quantity(claim["resources"]["requests"]["storage"]) <= sizes[volume] * 1e9, f"{owner}: bigger than the volume"
        assert runs_on(pod) == "control", f"{owner}: its pod may run away from the volume (on any node)"
        seen.add(volume)
    assert {"postgresql", "minio"} <= seen, f"{env}: nothing stores on {sorted({'postgresql', 'minio'} - seen)}"
    assert seen == set(sizes), f"{env}: volumes nothing uses: {sorted(set(sizes) - seen)}"
