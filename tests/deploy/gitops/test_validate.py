"""The validator itself: each rule it enforces, shown failing on a fixture, against the real upstream CRDs.

The CRDs are ArgoCD's (v3.5.1) and Argo Workflows' full ones (v4.0.4) from the chart cache; the synthetic CRD
at the end covers the structural-schema keywords those do not use.
"""

from __future__ import annotations

import pytest

from mlops.gitops.charts import MissingArtifact, find_artifact
from mlops.gitops.validate import Schemas, crd_documents, problems
from support.gitops import changed, require_cache

APPLICATION = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Application",
    "metadata": {"name": "fixture", "namespace": "argocd", "annotations": {"argocd.argoproj.io/sync-wave": "1"}},
    "spec": {
        "project": "default",
        "source": {"repoURL": "https://example.org/repo.git", "targetRevision": "main", "path": "chart",
                   "helm": {"valuesObject": {"any": {"thing": [1, "two"]}}}},
        "destination": {"server": "https://kubernetes.default.svc", "namespace": "fixture"},
        "syncPolicy": {"automated": {"prune": True, "selfHeal": True}, "retry": {"limit": 3, "refresh": True}},
    },
}

WORKFLOW_TEMPLATE = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "WorkflowTemplate",
    "metadata": {"name": "fixture", "namespace": "argo"},
    "spec": {
        "entrypoint": "main",
        "templates": [{
            "name": "main",
            "retryStrategy": {"limit": "2", "retryPolicy": "OnError"},
            "container": {"image": "busybox:1.37.0", "command": ["true"],
                          "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"nvidia.com/gpu": 1}}},
        }],
    },
}


@pytest.fixture(scope="module")
def schemas() -> Schemas:
    require_cache()
    try:
        argocd = find_artifact("argo-cd", "v3.5.1") / "manifests" / "crds"
        argo = find_artifact("argo-workflows-manifests", "v4.0.4") / "manifests" / "base" / "crds" / "full"
    except MissingArtifact as e:
        pytest.skip(str(e))
    return Schemas(crd_documents([*argocd.glob("*-crd.yaml"), *argo.glob("argoproj.io_*.yaml")]))


def test_good_fixtures_pass(schemas):
    assert problems([APPLICATION, WORKFLOW_TEMPLATE], schemas) == []


@pytest.mark.parametrize(("doc", "path", "value", "expected"), [
    (APPLICATION, "spec/syncPolicy/automated/selfheal", True, "spec.syncPolicy.automated: Additional properties are not allowed ('selfheal'"),
    (APPLICATION, "spec/source/helm/valuesFiles", ["x.yaml"], "('valuesFiles' was unexpected)"),
    (APPLICATION, "spec/revisionHistoryLimit", "10", "spec.revisionHistoryLimit: '10' is not of type 'integer'"),
    (APPLICATION, "metadata/labelz", {}, "metadata: Additional properties are not allowed ('labelz'"),
    (APPLICATION, "metadata/annotations", {"a": 1}, "metadata.annotations.a: 1 is not of type 'string'"),
    (WORKFLOW_TEMPLATE, "spec/templates/0/container/resource", {}, "container: Additional properties are not allowed ('resource'"),
    (WORKFLOW_TEMPLATE, "spec/templates/0/activeDeadline", 60, "('activeDeadline' was unexpected)"),
    # A quantity is an integer or a string in Kubernetes' quantity syntax; an Argo expression is neither.
    (WORKFLOW_TEMPLATE, "spec/templates/0/container/resources/limits/nvidia.com~gpu", "{{workflow.parameters.gpus}}", "does not match"),
    (WORKFLOW_TEMPLATE, "spec/templates/0/retryStrategy/limit", [2], "is not valid under any of the given schemas"),
    (APPLICATION, "status", {"reconciledAt": "yesterday"}, "'yesterday' is not a 'date-time'"),
], ids=["typo selfheal", "typo valuesFiles", "string for integer", "metadata typo", "annotation not a string",
        "container typo", "template typo", "expression as a quantity", "list as int-or-string", "not a date-time"])
def test_invalid_fields_are_reported(schemas, doc, path, value, expected):
    found = problems([changed(doc, path, value)], schemas)
    assert any(expected in p for p in found), found


def test_int_or_string_takes_both(schemas):
    assert problems([changed(WORKFLOW_TEMPLATE, "spec/templates/0/retryStrategy/limit", 2)], schemas) == []
    assert problems([changed(APPLICATION, "status", {"reconciledAt": "2026-12-01T12:00:00Z"})], schemas) == []


def test_required_fields_are_required(schemas):
    found = problems([changed(APPLICATION, "spec/destination", delete=True)], schemas)
    assert any("'destination' is a required property" in p for p in found), found


def test_built_in_kinds_are_strict_and_unknown_kinds_are_reported(schemas):
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                  "spec": {"selector": {"matchLabels": {"a": "b"}}, "replica": 1,
                           "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}}
    assert any("'replica' was unexpected" in p for p in problems([deployment], schemas))
    unknown = {"apiVersion": "example.org/v1", "kind": "Gadget", "metadata": {"name": "g"}}
    assert problems([unknown], schemas) == ["Gadget/g: no schema for example.org/v1 Gadget in Kubernetes 1.31.0 "
                                            "and no CustomResourceDefinition for it"]


SYNTHETIC_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.example.org"},
    "spec": {"group": "example.org", "names": {"kind": "Gadget", "plural": "gadgets"}, "scope": "Namespaced",
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object",
                 "properties": {
                     "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
                     "spec": {"type": "object", "properties": {
                         "size": {"x-kubernetes-int-or-string": True},
                         "note": {"type": "string", "nullable": True},
                         "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"a": {"type": "string"}}},
                         "embedded": {"type": "object", "x-kubernetes-embedded-resource": True,
                                      "x-kubernetes-preserve-unknown-fields": True},
                         "strictEmbedded": {"type": "object", "x-kubernetes-embedded-resource": True,
                                            "properties": {"spec": {"type": "object"}}},
                     }},
                 }}}}]},
}


def gadget(**spec) -> dict:
    return {"apiVersion": "example.org/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": spec}


def test_structural_schema_keywords():
    schemas = Schemas([SYNTHETIC_CRD])
    assert problems([gadget(size=3, note=None, free={"a": "x", "b": 1}, embedded={"anything": 1},
                            strictEmbedded={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "spec": {}})],
                    schemas) == []
    assert problems([gadget(size="3Gi")], schemas) == []
    assert problems([gadget(size=1.5)], schemas) != []
    assert any("('other' was unexpected)" in p for p in problems([gadget(strictEmbedded={"other": 1})], schemas))
    assert any("('sizes' was unexpected)" in p for p in problems([gadget(sizes=1)], schemas))
