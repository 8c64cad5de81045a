"""The service's Helm chart, rendered by the real helm: lint, strict Kubernetes schemas, policies, monitoring files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from infra.config import BootstrapConfig
from mlops.gitops.layout import ENVIRONMENTS
from mlops.gitops.render import helm_binary
from mlops.gitops.render import render as render_environment

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "gitops" / "charts" / "transformers-qa"
KUBERNETES_VERSION = "1.31.0"  # the pinned k3s (infra/config.py: v1.31.4+k3s1)
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


def helm() -> str:
    return helm_binary()  # fails with what to run when helm is missing


def render(*overrides: str, strings: tuple[str, ...] = ()) -> list[dict]:
    """`helm template` with --set overrides (and --set-string ones, e.g. model.version, a string in the schema)."""
    flags = [a for o in overrides for a in ("--set", o)] + [a for o in strings for a in ("--set-string", o)]
    result = subprocess.run([helm(), "template", "qa", str(CHART), *flags], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in docs if d["kind"] in WORKLOADS]


def policy_violations(docs: list[dict]) -> list[str]:
    """What a workload must have here: non-root, no privilege escalation, read-only root, limits, probes, pinned images."""
    problems = []
    for name, spec in pod_specs(docs):
        if not spec.get("securityContext", {}).get("runAsNonRoot"):
            problems.append(f"{name}: pod may run as root")
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{name}/{container['name']}"
            image = container["image"]
            tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
            if not tag or tag == "latest":
                problems.append(f"{where}: image {image} is not pinned")
            security = container.get("securityContext", {})
            if security.get("allowPrivilegeEscalation") is not False or not security.get("readOnlyRootFilesystem"):
                problems.append(f"{where}: privilege escalation or writable root file system")
            resources = container.get("resources", {})
            if not {"cpu", "memory"} <= set(resources.get("requests", {})) or not {"cpu", "memory"} <= set(resources.get("limits", {})):
                problems.append(f"{where}: missing cpu/memory requests or limits")
            if container in spec["containers"] and not ("readinessProbe" in container and "livenessProbe" in container):
                problems.append(f"{where}: missing readiness or liveness probe")
    return problems


def test_helm_lint_strict():
    result = subprocess.run([helm(), "lint", "--strict", str(CHART)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("overrides", [(), ("triton.gpu=true", "ingress.enabled=false", "networkPolicy.enabled=false")])
def test_rendered_built_in_kinds_pass_strict_kubernetes_schemas(overrides):
    docs = render(*overrides)
    built_in = [d for d in docs if not d["apiVersion"].startswith("monitoring.coreos.com/")]
    assert {d["kind"] for d in built_in} >= {"Deployment", "Service", "ConfigMap"}
    for doc in built_in:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)  # raises on unknown or mistyped fields


def test_workloads_meet_the_policies():
    docs = render()
    assert len(pod_specs(docs)) == 2
    assert policy_violations(docs) == []


def test_the_policy_check_catches_violations():
    docs = render()
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["image"] = "ghcr.io/transformers-qa/api:latest"
    del container["resources"]["limits"]
    del container["readinessProbe"]
    container["securityContext"]["readOnlyRootFilesystem"] = False
    deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] = False
    problems = policy_violations([deployment])
    name = deployment["metadata"]["name"]
    assert f"{name}: pod may run as root" in problems
    for expected in ("is not pinned", "writable root file system", "missing cpu/memory requests or limits", "missing readiness or liveness probe"):
        assert any(expected in p for p in problems), expected


def test_triton_gets_its_model_version_from_the_artifact_store_and_a_gpu_when_asked():
    docs = render("triton.gpu=true", strings=("model.version=7",))
    triton = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "qa-triton")
    spec = triton["spec"]["template"]["spec"]
    assert [c["args"] for c in spec["initContainers"]] == [
        ["cp", "store/models/transformers-qa/config.pbtxt", "/models/transformers-qa/config.pbtxt"],
        ["mirror", "store/models/transformers-qa/7", "/models/transformers-qa/7"],
    ]
    (container,) = spec["containers"]
    assert "--load-model=transformers-qa" in container["args"] and "--model-control-mode=explicit" in container["args"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert triton["metadata"]["labels"]["transformers-qa/model-version"] == "7"
    no_gpu = next(d for d in render() if d["metadata"]["name"] == "qa-triton" and d["kind"] == "Deployment")
    assert "nvidia.com/gpu" not in no_gpu["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]


def test_secrets_are_referenced_never_embedded():
    docs = render()
    assert not [d for d in docs if d["kind"] == "Secret"]
    refs = {env["valueFrom"]["secretKeyRef"]["name"]
            for _, spec in pod_specs(docs) for c in spec.get("initContainers", []) + spec["containers"]
            for env in c.get("env", []) if "valueFrom" in env}
    assert refs == {"minio", "postgres"}


def test_only_the_api_reaches_triton():
    policy = next(d for d in render() if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "qa-triton")
    inference, metrics = policy["spec"]["ingress"]
    assert inference["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "qa", "app.kubernetes.io/component": "api"}}}]
    assert {p["port"] for p in inference["ports"]} == {8000, 8001}
    assert [p["port"] for p in metrics["ports"]] == [8002]


def test_monitoring_ships_the_tested_dashboard_and_alert_rules():
    docs = render()
    dashboard = next(d for d in docs if d["kind"] == "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["transformers-qa.json"]) == json.loads((CHART / "files/grafana/transformers-qa.json").read_text())
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((CHART / "files/prometheus/alerts.yaml").read_text())
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
    ports = {e["port"] for e in monitor["spec"]["endpoints"]}
    service_ports = {p["name"] for d in docs if d["kind"] == "Service" for p in d["spec"]["ports"]}
    assert ports == {"api", "metrics"} and ports <= service_ports


@pytest.mark.parametrize(("override", "field"), [
    ("images.api.tag=latest", "images.api.tag"),
    ("model.version=seven", "model.version"),
    ("model.version=7", "model.version"),  # a number: versions are strings ("7")
    ("triton.replicas=0", "triton.replicas"),
    ("unknownKey=1", "unknownKey"),
])
def test_values_schema_rejects_bad_values(override: str, field: str):
    result = subprocess.run([helm(), "template", "qa", str(CHART), "--set", override], capture_output=True, text=True, timeout=120)
    # helm 4 names the field as a JSON pointer (/model/version), helm 3 with dots (model.version)
    assert result.returncode != 0 and ("/" + field.replace(".", "/") in result.stderr or field in result.stderr), result.stderr
    assert "schema" in result.stderr


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_environment_renders_valid_pinned_manifests(env: str):
    rendered = render_environment(ROOT, env)
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    apps = [d for d in docs if d["kind"] == "Application"]
    assert apps, "no Application for the root app to sync"
    for app in apps:
        # Our repository (the chart, or the values of an upstream chart), and automated sync: git is the only way in.
        sources = app["spec"].get("sources") or [app["spec"]["source"]]
        assert BootstrapConfig().repo_url in [s["repoURL"] for s in sources], app["metadata"]["name"]
        assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
        for upstream in [s for s in sources if "chart" in s]:  # named with its pinned version in the stream
            assert f"chart {upstream['chart']} {upstream['targetRevision']} from {upstream['repoURL']}" in rendered
    built_in = [d for d in docs if d["apiVersion"].split("/")[0] in ("v1", "apps", "networking.k8s.io", "rbac.authorization.k8s.io")]
    for doc in built_in:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert policy_violations(docs) == []
    triton = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "transformers-qa-triton")
    gpu = "nvidia.com/gpu" in triton["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu == (env != "dev")  # GPU nodes only in staging and prod
    # The release pipeline (Argo Workflows and its resources) runs in staging only.
    assert any(d["kind"] == "WorkflowTemplate" for d in docs) == (env == "staging")
