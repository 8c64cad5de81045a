"""A search on a Ray cluster: the RayJob the release template's `tune` entrypoint creates (template search-on-ray),
checked against the full RayJob CRD of the KubeRay chart staging pins (its crds/), against the operator's
namespace and the pipeline's RBAC, and against what the trainer image has (its ray; the commands it runs)."""

from __future__ import annotations

import re

import pytest
import yaml

from mlops.gitops.validate import problems
from support.dockerfiles import lock_pins
from support.gitops import application, schemas
from support.paths import ROOT
from support.workflows import DOCS, TEMPLATE, assert_parses, templates

SEARCH = templates()["search-on-ray"]
WORKERS, TRIALS, TAG = "2", "8", "v1.4.0"


def rayjob(workers: str = WORKERS) -> dict:
    """The RayJob as the executor creates it: the manifest with Argo's placeholders filled in."""
    filled = (SEARCH["resource"]["manifest"].replace("{{workflow.parameters.tune-workers}}", workers)
              .replace("{{workflow.parameters.tune-trials}}", TRIALS).replace("{{inputs.parameters.image-tag}}", TAG))
    assert "{{" not in filled, filled
    return yaml.safe_load(filled)


def ray_schemas():
    found = schemas("staging")
    if not found.knows({"apiVersion": "ray.io/v1", "kind": "RayJob"}):
        pytest.skip(application("staging", "platform-kuberay-operator-staging").missing or "no RayJob CRD rendered")
    return found


def test_the_rayjob_meets_the_kuberay_crd():
    assert problems([rayjob()], ray_schemas()) == []


@pytest.mark.parametrize(("change", "problem"), [
    (lambda s: s["rayClusterSpec"]["workerGroupSpecs"][0].update(replica=2), "Additional properties are not allowed ('replica'"),
    (lambda s: s["rayClusterSpec"]["headGroupSpec"]["rayStartParams"].update({"num-cpus": 0}), "0 is not of type 'string'"),
    (lambda s: s.update(shutdownAfterJobFinishes="yes"), "'yes' is not of type 'boolean'"),
])
def test_the_crd_check_catches_what_kuberay_would_refuse(change, problem: str):
    broken = rayjob()
    change(broken["spec"])
    assert any(problem in p for p in problems([broken], ray_schemas())), problems([broken], ray_schemas())


def test_the_cluster_runs_the_trainer_images_ray():
    """rayVersion is the lock's ray, at least 2.53: from there KubeRay 1.7.0 probes Ray containers over HTTP
    (ray-operator/controllers/ray/common/pod.go, supportsUnifiedHealthCheck) instead of with wget, which the
    trainer image (python:3.11.11-slim-bookworm) does not have."""
    version = rayjob()["spec"]["rayClusterSpec"]["rayVersion"]
    assert version == lock_pins(ROOT / "images" / "trainer" / "requirements.lock")["ray"]
    assert tuple(map(int, version.split("."))) >= (2, 53)
    cluster = rayjob()["spec"]["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]["template"], *(g["template"] for g in cluster["workerGroupSpecs"])]
    for pod in pods:
        (container,) = pod["spec"]["containers"]
        assert container["image"] == f"ghcr.io/transformers-qa/trainer:{TAG}"
        assert "command" not in container and "args" not in container  # KubeRay writes the `ray start` command
        assert container["resources"]["limits"] and container["securityContext"]["allowPrivilegeEscalation"] is False


def test_the_head_makes_the_dataset_and_drives_the_search():
    data, tune = rayjob()["spec"]["entrypoint"].split(" && ")
    assert data == "dataset=$(mlops data)"
    argv = tune.split()
    assert argv[:3] == ["mlops", "tune", "--dataset"] and argv[3] == '"$dataset"'
    assert argv[argv.index("--trials") + 1] == TRIALS
    assert_parses(["data"])
    assert_parses([a.strip('"') for a in argv[1:]])
    head = rayjob()["spec"]["rayClusterSpec"]["headGroupSpec"]
    assert head["rayStartParams"] == {"num-cpus": "0"}  # trials are never scheduled beside the driver
    assert {e["name"] for e in head["template"]["spec"]["containers"][0]["env"]} == {"MLOPS_FEEDBACK"}  # as `data`


def test_every_worker_has_a_gpu_and_the_group_is_the_size_asked_for():
    (group,) = rayjob("3")["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert group["replicas"] == group["minReplicas"] == group["maxReplicas"] == 3
    resources = group["template"]["spec"]["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in group["template"]["spec"]["tolerations"]


def test_the_step_waits_for_the_jobs_own_end():
    """The conditions read status fields of the CRD with values KubeRay sets (ray-operator/apis/ray/v1/
    rayjob_types.go at v1.7.0: JobStatusSucceeded "SUCCEEDED", JobDeploymentStatusFailed "Failed")."""
    status = ray_schemas().by_kind[("ray.io/v1", "RayJob")]["properties"]["status"]["properties"]
    for condition, value in ((SEARCH["resource"]["successCondition"], "SUCCEEDED"),
                             (SEARCH["resource"]["failureCondition"], "Failed")):
        field, expected = re.fullmatch(r"status\.(\w+) == (\w+)", condition).groups()
        assert field in status and expected == value
    assert SEARCH["resource"]["action"] == "create" and SEARCH["resource"]["setOwnerReference"] is True
    assert rayjob()["spec"]["shutdownAfterJobFinishes"] is True  # the cluster goes when the search ends


def test_the_operator_watches_the_namespace_the_job_is_made_in_and_the_pipeline_may_make_it():
    values = yaml.safe_load((ROOT / "gitops/platform/kuberay-operator/values.yaml").read_text())
    assert rayjob()["metadata"]["namespace"] in values["watchNamespace"] == [TEMPLATE["metadata"]["namespace"]]
    role = next(d for d in DOCS if d["kind"] == "Role" and d["metadata"]["name"] == "mlops-pipeline-executor")
    assert {"apiGroups": ["ray.io"], "resources": ["rayjobs"], "verbs": ["create", "get"]} in role["rules"]


def test_one_search_runs_however_many_workers_are_asked_for():
    """Argo's `when` (govaluate) after substitution: `0 == 0` runs the data step and with it the one-pod search;
    `2 > 0` runs the RayJob instead."""
    tasks = {t["name"]: t for t in templates()["tune"]["dag"]["tasks"]}
    assert tasks["data"]["when"] == "{{workflow.parameters.tune-workers}} == 0"
    assert tasks["search-on-ray"]["when"] == "{{workflow.parameters.tune-workers}} > 0"
    assert tasks["search"]["depends"] == "data.Succeeded" and "when" not in tasks["search"]  # omitted when data is skipped
