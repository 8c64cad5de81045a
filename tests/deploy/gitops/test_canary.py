"""Prod's canary: the Rollout and AnalysisTemplate our chart renders for a promoted prod, checked against the full
Argo Rollouts CRDs at the pinned chart (its templates/crds carry the project's whole openAPIV3Schema), and wired to
the Triton Deployment, the promoted version and the analysis's arguments."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from support.gitops import application, promoted_service, schemas
from support.paths import ROOT

ANALYSIS = ROOT / "gitops" / "charts" / "transformers-qa" / "files" / "rollouts" / "analysis.yaml"


def rollouts_schemas():
    found = schemas("prod")
    if not found.knows({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout"}):
        pytest.skip(application("prod", "platform-argo-rollouts-prod").missing or "no Rollout CRD rendered")
    return found


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def test_prod_alone_runs_the_canary_and_the_controller():
    for env in ("dev", "staging", "prod"):
        apps = yaml.safe_load((ROOT / f"gitops/envs/{env}/apps.yaml").read_text())["apps"]
        service = yaml.safe_load((ROOT / f"gitops/envs/{env}/values/service.yaml").read_text()) or {}
        canary = service.get("canary", {}).get("enabled", False)
        assert canary == (env == "prod") and canary == ("argo-rollouts" in apps), env


def test_the_canary_objects_meet_the_rollouts_crds():
    found = rollouts_schemas()
    docs = promoted_service("prod")
    [rollout], [template] = by_kind(docs, "Rollout"), by_kind(docs, "AnalysisTemplate")
    for doc in (rollout, template):
        assert found.problems(doc) == [], doc["kind"]


def test_a_misspelt_field_is_refused_by_the_crd():
    found = rollouts_schemas()
    [rollout] = by_kind(promoted_service("prod"), "Rollout")
    broken = copy.deepcopy(rollout)
    broken["spec"]["strategy"]["canary"]["step"] = broken["spec"]["strategy"]["canary"].pop("steps")
    assert any("step" in problem for problem in found.problems(broken))
    [template] = by_kind(promoted_service("prod"), "AnalysisTemplate")
    broken = copy.deepcopy(template)
    broken["spec"]["metrics"][0]["provider"]["prometheus"]["querry"] = broken["spec"]["metrics"][0]["provider"]["prometheus"].pop("query")
    assert found.problems(broken)


def test_the_rollout_runs_the_triton_pods_and_the_deployment_none():
    docs = promoted_service("prod")
    [rollout] = by_kind(docs, "Rollout")
    [triton] = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == rollout["spec"]["workloadRef"]["name"]]
    assert triton["spec"]["replicas"] == 0 and rollout["spec"]["replicas"] >= 1
    assert rollout["spec"]["workloadRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": triton["metadata"]["name"],
                                              "scaleDown": "never"}
    assert "template" not in rollout["spec"] and "selector" not in rollout["spec"]  # both come from the Deployment
    # The Triton Service selects the Rollout's pods (the Deployment's template labels), canary and stable alike.
    [service] = [s for s in by_kind(docs, "Service") if s["spec"]["selector"].get("app.kubernetes.io/component") == "triton"]
    labels = triton["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_every_step_judges_the_promoted_version_with_every_argument_the_analysis_reads():
    docs = promoted_service("prod")  # model.version 1
    [rollout], [template] = by_kind(docs, "Rollout"), by_kind(docs, "AnalysisTemplate")
    steps = rollout["spec"]["strategy"]["canary"]["steps"]
    assert [s["setWeight"] for s in steps if "setWeight" in s] == [10, 50]  # then 100, when the last step passes
    analyses = [s["analysis"] for s in steps if "analysis" in s]
    assert len(analyses) == 2 and all(steps[i + 1].get("analysis") for i, s in enumerate(steps) if "pause" in s)
    declared = {a["name"] for a in template["spec"]["args"]}
    used = set(re.findall(r"\{\{args\.([\w-]+)\}\}", ANALYSIS.read_text()))
    assert used == declared
    for analysis in analyses:
        assert [t["templateName"] for t in analysis["templates"]] == [template["metadata"]["name"]]
        args = {a["name"]: a["value"] for a in analysis["args"]}
        assert args.keys() == declared and args["model-version"] == "1"
        assert args["prometheus"] == "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"


def test_the_analysis_asks_the_prometheus_the_stack_runs():
    """The address the AnalysisTemplate gets is the Service kube-prometheus-stack renders for its Prometheus."""
    [rollout] = by_kind(promoted_service("prod"), "Rollout")
    address = next(a["value"] for s in rollout["spec"]["strategy"]["canary"]["steps"] if "analysis" in s
                   for a in s["analysis"]["args"] if a["name"] == "prometheus")
    monitoring = application("prod", "platform-kube-prometheus-stack-prod")
    if monitoring.missing:
        pytest.skip(monitoring.missing)
    name, namespace, port = re.fullmatch(r"http://([\w-]+)\.([\w-]+)\.svc:(\d+)", address).groups()
    services = [d for d in monitoring.documents if d["kind"] == "Service" and d["metadata"]["name"] == name]
    assert services, f"no Service {name} in kube-prometheus-stack"
    assert monitoring.application["spec"]["destination"]["namespace"] == namespace
    assert int(port) in [p["port"] for p in services[0]["spec"]["ports"]]
