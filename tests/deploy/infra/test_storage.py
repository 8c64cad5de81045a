"""The StorageClasses the bootstrap declares: valid for the cluster's Kubernetes, and exactly the volumes each stack mounts.

The manifest is what the volumes role renders into k3s's manifests folder (k3s applies it), from the
`volumes_list` the Pulumi program passes for each stack. How the local-path-provisioner reads it
(rancher/local-path-provisioner v0.0.30, the version k3s v1.31.4+k3s1 bundles, provisioner.go):
`parameters.nodePath` must be one of the config's nodePathMap paths for the node, `pathPattern` is a Go
template over the claim, the helper pod comes from the ConfigMap key helperPod.yaml.
"""

from __future__ import annotations

import json
import sys
import tempfile

import ansible_runner
import kubernetes_validate
import pytest
import yaml

from infra.bootstrap import ANSIBLE_DIR, RUNNER_PATH
from infra.config import BootstrapConfig
from support.infra import STACKS, run

# The cluster's Kubernetes: the pinned k3s (v1.31.4+k3s1 -> 1.31).
KUBERNETES_VERSION = ".".join(BootstrapConfig().k3s_version.removeprefix("v").split("+")[0].split(".")[:2]) + ".0"
ROOT_DIR = "/srv/transformers-qa"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, tuple[list, list[dict]]]:
    """stack -> (its volumes_list from the program, the manifest's documents), rendered by the real role in one run."""
    work = tmp_path_factory.mktemp("storage")
    volumes = {stack: run(stack)[0].dynamic("bootstrap").inputs["extravars"]["volumes_list"] for stack in STACKS}
    hosts = {stack: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                     "volumes_list": volumes[stack], "volumes_manifests_dir": str(work / stack)} for stack in STACKS}
    playbook = work / "volumes.yml"
    playbook.write_text(yaml.safe_dump([{"name": "Render", "hosts": "all", "gather_facts": False, "roles": ["volumes"]}]))
    runner = ansible_runner.run(private_data_dir=tempfile.mkdtemp(dir=work), playbook=str(playbook), quiet=True,
                                inventory=yaml.safe_dump({"all": {"hosts": hosts}}), roles_path=str(ANSIBLE_DIR / "roles"),
                                tags="config", envvars={"PATH": RUNNER_PATH})
    assert runner.status == "successful", runner.stdout.read()[-3000:]
    return {stack: (volumes[stack], [d for d in yaml.safe_load_all((work / stack / "transformers-qa-storage.yaml").read_text()) if d])
            for stack in STACKS}


@pytest.mark.parametrize("stack", STACKS)
def test_every_object_is_valid_for_the_clusters_kubernetes(rendered, stack: str):
    _, docs = rendered[stack]
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)  # raises on unknown or mistyped fields
    (config,) = [d for d in docs if d["kind"] == "ConfigMap"]
    helper = yaml.safe_load(config["data"]["helperPod.yaml"])
    kubernetes_validate.validate(helper, KUBERNETES_VERSION, strict=True)
    assert helper["spec"]["containers"][0]["image"] == "rancher/mirrored-library-busybox:1.36.1"


@pytest.mark.parametrize("stack", STACKS)
def test_one_storage_class_per_mounted_volume_putting_volumes_in_its_mount(rendered, stack: str):
    volumes, docs = rendered[stack]
    classes = {d["metadata"]["name"]: d for d in docs if d["kind"] == "StorageClass"}
    assert sorted(classes) == sorted(f"qa-{v['name']}" for v in volumes) and volumes
    (config,) = [d for d in docs if d["kind"] == "ConfigMap"]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    node_paths = json.loads(config["data"]["config.json"])["nodePathMap"]
    assert node_paths == [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [f"{ROOT_DIR}/{v['name']}" for v in volumes]}]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "rancher/local-path-provisioner:v0.0.30"
    provisioner = next(a.split("=", 1)[1] for a in container["command"] if a.startswith("--provisioner-name="))
    assert f"--configmap-name={config['metadata']['name']}" in container["command"]
    for volume in volumes:
        storage_class = classes[f"qa-{volume['name']}"]
        assert storage_class["provisioner"] == provisioner != "rancher.io/local-path"  # not k3s's own provisioner
        assert storage_class["parameters"]["nodePath"] == f"{ROOT_DIR}/{volume['name']}"  # the mount (volumes role)
        assert storage_class["parameters"]["pathPattern"] == "{{ .PVC.Namespace }}/{{ .PVC.Name }}"
        assert storage_class["reclaimPolicy"] == "Retain" and storage_class["volumeBindingMode"] == "WaitForFirstConsumer"
        assert storage_class["allowedTopologies"] == [
            {"matchLabelExpressions": [{"key": "transformers-qa/role", "values": ["control"]}]}]
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {"transformers-qa/role": "control"}


def test_the_control_node_carries_the_label_the_classes_select():
    template = (ANSIBLE_DIR / "roles" / "k3s_server" / "templates" / "config.yaml.j2").read_text()
    assert '"transformers-qa/role=control"' in template
