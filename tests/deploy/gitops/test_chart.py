"""The service's Helm chart, rendered by the real helm: lint, strict Kubernetes schemas, policies, monitoring files."""

from __future__ import annotations

import json
import subprocess

import kubernetes_validate
import pytest
import yaml

from mlops.gitops.charts import helm_binary
from support.paths import ROOT

CHART = ROOT / "gitops" / "charts" / "transformers-qa"
KUBERNETES_VERSION = "1.31.0"  # the pinned k3s (infra/config.py: v1.31.4+k3s1)
# A promoted environment: the chart runs pods only once a promotion has set the model version and image tags.
PROMOTED = ("images.triton.tag=v1.0.0", "images.api.tag=v1.0.0", "ingress.host=qa.203.0.113.10.nip.io",
            "ingress.clusterIssuer=letsencrypt")
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


def helm() -> str:
    return helm_binary()  # fails with what to run when helm is missing


def render(*overrides: str, strings: tuple[str, ...] = ("model.version=3",)) -> list[dict]:
    """`helm template` of a promoted environment with --set overrides (and --set-string ones, e.g. model.version,
    a string in the schema)."""
    flags = [a for o in (*PROMOTED, *overrides) for a in ("--set", o)] + [a for o in strings for a in ("--set-string", o)]
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
    ("images.api.tag=0.1.0", "images.api.tag"),  # release tags are v1.2.3: the release workflow builds those
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


def test_nothing_runs_before_the_first_promotion():
    """model.version "" (and the image tags ""): no pods, no Ingress; the monitoring objects only."""
    assert {d["kind"] for d in render(strings=("model.version=",))} == {"NetworkPolicy", "ConfigMap", "PrometheusRule", "ServiceMonitor"}
    result = subprocess.run([helm(), "template", "qa", str(CHART), "--set-string", "model.version=3"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "ghcr.io/transformers-qa/triton: no image tag" in result.stderr, result.stderr


def test_the_ingress_serves_tls_from_the_acme_issuer():
    ingress = next(d for d in render() if d["kind"] == "Ingress")
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert ingress["spec"]["tls"] == [{"secretName": "qa-tls", "hosts": ["qa.203.0.113.10.nip.io"]}]
    assert ingress["spec"]["rules"][0]["host"] == "qa.203.0.113.10.nip.io"
    plain = next(d for d in render("ingress.clusterIssuer=") if d["kind"] == "Ingress")
    assert "tls" not in plain["spec"] and "annotations" not in plain["metadata"]


# What the public URL must reach (the page, asking, rating, the OpenAPI page, liveness); every other route of the API
# (the feedback export: users' questions; /metrics; /readyz) stays inside the cluster.
PUBLIC_ROUTES = {"/", "/v1/ask", "/v1/feedback", "/docs", "/openapi.json", "/healthz"}


def routed(path: str, rules: list[dict]) -> bool:
    """Whether an Ingress path rule takes ``path``: Exact matches it whole, Prefix element by element along `/`
    (kubernetes.io/docs/concepts/services-networking/ingress/#path-types)."""
    def elements(p: str) -> list[str]:
        return [e for e in p.split("/") if e]
    return any(path == r["path"] if r["pathType"] == "Exact" else elements(path)[:len(elements(r["path"]))] == elements(r["path"])
               for r in rules)


def test_the_ingress_reaches_what_users_need_and_not_their_data_or_the_metrics(tmp_path):
    from mlops.serving.api import ApiConfig, create_app

    app = create_app(ApiConfig(triton_url="127.0.0.1:1", model_name="qa", database_url=f"sqlite:///{tmp_path / 'f.db'}"))
    routes = {route.path for route in app.routes}
    ingress = next(d for d in render() if d["kind"] == "Ingress")
    rules = ingress["spec"]["rules"][0]["http"]["paths"]
    assert {route for route in routes if routed(route, rules)} == PUBLIC_ROUTES
    assert {"/v1/feedback/export", "/metrics", "/readyz"} <= routes - PUBLIC_ROUTES
    assert all(routed(route, [{"path": "/", "pathType": "Prefix"}]) for route in routes)  # what a catch-all would give away
