"""The Pulumi program under `pulumi.runtime.set_mocks`, for each stack file: the resource graph and its policies.

Mocks record every resource registration and every provider call; each test first asserts that they
ran (a mock test that registers nothing would pass silently otherwise). Dynamic providers are not
called under mocks, so the lease's outputs come from the mock (the provider has its own HTTP tests).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

import pulumi
import pytest

from infra.config import PROJECT, parse
from infra.program import build, cluster_secrets
from test_infra_config import STACKS, stack_values

PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtest test@example"
FLOATING_IP = "129.114.108.10"
SECRETS = {"db_password": "db secret/value", "db_admin_password": "admin-secret-value", "minio_password": "minio-secret-value",
           "grafana_password": "grafana-secret-value"}


@dataclass
class Recorder(pulumi.runtime.Mocks):
    volumes: list[str] = field(default_factory=list)  # the stack's volume names, in config order
    resources: list = field(default_factory=list)
    calls: list = field(default_factory=list)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(args)
        outputs = dict(args.inputs)
        if args.typ == "pulumi-python:dynamic:Resource" and "inventory" in args.inputs:  # the Ansible bootstrap
            outputs["kubeconfig"] = f"apiVersion: v1\nclusters:\n- cluster:\n    server: https://{FLOATING_IP}:6443\n"
        if args.typ == "pulumi-python:dynamic:Resource" and "reservations" in args.inputs:  # the Blazar lease
            reserved = {f"{r['kind']}:{r['role']}": {"id": f"res-{r['kind']}-{r['role']}",
                                                      "flavor_id": f"res-{r['kind']}-{r['role']}" if r["kind"] == "flavor" else ""}
                        for r in args.inputs["reservations"]}
            outputs.update(lease_id="lease-1", status="ACTIVE", end_date="2026-11-30T15:00:00.000000", reserved=reserved)
        if args.typ == "openstack:compute/instance:Instance":
            outputs["access_ip_v4"] = f"10.0.0.{len(self.of('openstack:compute/instance:Instance')) + 10}"
        if args.typ == "openstack:networking/floatingIp:FloatingIp":
            outputs["address"] = FLOATING_IP
        if args.typ == "openstack:sharedfilesystem/share:Share":
            outputs["export_locations"] = [{"path": f"10.140.81.110:6789:/volumes/_nogroup/{args.name}", "preferred": True}]
        if args.typ == "openstack:compute/volumeAttach:VolumeAttach":
            # By the volume's place in the config, not by registration order (which is asynchronous).
            (index,) = [i for i, volume in enumerate(self.volumes) if args.name.endswith(f"-{volume}-attach")]
            outputs["device"] = f"/dev/vd{'bcdefg'[index]}"
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        self.calls.append(args)
        if args.token == "openstack:networking/getNetwork:getNetwork":
            return {"id": f"net-{args.args['name']}", "name": args.args["name"]}
        if args.token == "openstack:compute/getFlavor:getFlavor":
            return {"id": f"flavor-{args.args['name']}", "name": args.args["name"]}
        if args.token == "openstack:networking/getFloatingIp:getFloatingIp":
            return {"id": "fip-1", "address": FLOATING_IP, "tags": args.args["tags"]}
        raise AssertionError(f"unexpected call {args.token}")

    def of(self, typ: str) -> list:
        return [r for r in self.resources if r.typ == typ]

    def dynamic(self, name: str):
        (found,) = [r for r in self.resources if r.typ == "pulumi-python:dynamic:Resource" and r.name == name]
        return found


def run(stack: str, values: dict | None = None) -> tuple[Recorder, dict]:
    """Run the program for a stack under mocks; the recorder and the resolved stack outputs."""
    config = parse(stack, values or stack_values(stack))
    mocks = Recorder(volumes=[v.name for v in config.volumes])
    # Pulumi's runtime runs on the thread's current event loop; earlier tests (asyncio.run) leave none.
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)
    resolved: dict = {}

    @pulumi.runtime.test
    def program():
        outputs = build(config, PUBLIC_KEY, SECRETS)
        names = list(outputs)
        return pulumi.Output.all(*outputs.values()).apply(lambda vals: resolved.update(zip(names, vals, strict=True)))

    program()
    assert mocks.resources, "the program registered no resources"
    return mocks, resolved


@pytest.mark.parametrize("stack", STACKS)
def test_nodes_are_placed_in_the_lease(stack: str):
    mocks, outputs = run(stack)
    config = parse(stack, stack_values(stack))
    lease = mocks.dynamic("lease")
    assert lease.inputs["name"] == f"{PROJECT}-{stack}" and lease.inputs["hours"] == config.lease.hours
    instances = mocks.of("openstack:compute/instance:Instance")
    by_role = Counter(i.inputs["metadata"]["role"] for i in instances)
    assert by_role == Counter({g.role: g.count for g in config.node_groups})
    for instance in instances:
        role = instance.inputs["metadata"]["role"]
        if config.site.startswith("CHI@"):
            assert instance.inputs["flavorName"] == "baremetal"
            assert instance.inputs["schedulerHints"] == [{"additionalProperties": {"reservation": f"res-host-{role}"}}]
        else:
            assert instance.inputs["flavorId"] == f"res-flavor-{role}" and "schedulerHints" not in instance.inputs
        assert instance.inputs["keyPair"] == config.access.key_name
    kinds = Counter(r["kind"] for r in lease.inputs["reservations"])
    if config.site.startswith("CHI@"):
        assert kinds == Counter({"host": len(config.node_groups), "floatingip": 1, "network": 1})
        (storage,) = [r for r in lease.inputs["reservations"] if r["kind"] == "network"]
        assert storage["network_name"] == f"{PROJECT}-{stack}-storage"
        host = {r["role"]: r["node_type"] for r in lease.inputs["reservations"] if r["kind"] == "host"}
        assert host == {g.role: g.node_type for g in config.node_groups}
    else:
        assert kinds == Counter({"flavor": len(config.node_groups)})
        flavors = {r["role"]: r["flavor_id"] for r in lease.inputs["reservations"]}
        assert flavors == {g.role: f"flavor-{g.flavor}" for g in config.node_groups}
    assert outputs["lease_id"] == "lease-1" and outputs["lease_end"].startswith("2026-11-30")


@pytest.mark.parametrize("stack", STACKS)
def test_the_control_node_gets_the_floating_ip(stack: str):
    mocks, outputs = run(stack)
    (association,) = mocks.of("openstack:networking/floatingIpAssociate:FloatingIpAssociate")
    assert association.inputs["floatingIp"] == FLOATING_IP and association.inputs["portId"] == f"{stack}-control-0-port-id"
    allocated = mocks.of("openstack:networking/floatingIp:FloatingIp")
    reserved = [c for c in mocks.calls if c.token == "openstack:networking/getFloatingIp:getFloatingIp"]
    if stack == "dev":  # KVM: allocated from the pool
        assert len(allocated) == 1 and allocated[0].inputs["pool"] == "public" and not reserved
    else:  # bare metal: the address Blazar reserved, found by its reservation tag
        assert not allocated and reserved[0].args["tags"] == ["reservation:res-floatingip-control"]
    assert outputs["floating_ip"] == FLOATING_IP and outputs["ssh"] == f"ssh cc@{FLOATING_IP}"
    inventory = outputs["ansible_inventory"]
    assert f"control-0 ansible_host={FLOATING_IP}" in inventory and "ansible_user=cc" in inventory
    assert inventory.count("ProxyJump") == sum(g.count for g in parse(stack, stack_values(stack)).node_groups if g.role != "control")


@pytest.mark.parametrize("stack", STACKS)
def test_network_and_security_rules(stack: str):
    mocks, _ = run(stack)
    config = parse(stack, stack_values(stack))
    networks = mocks.of("openstack:networking/network:Network")
    (router,) = mocks.of("openstack:networking/router:Router")
    (subnet,) = mocks.of("openstack:networking/subnet:Subnet")
    assert router.inputs["externalNetworkId"] == "net-public" and subnet.inputs["cidr"] == config.network.cidr
    assert len(mocks.of("openstack:networking/routerInterface:RouterInterface")) == 1
    if config.network.create:  # KVM: our own network
        assert len(networks) == 1 and subnet.inputs["networkId"] == f"{stack}-net-id"
    else:  # bare metal with shares: the storage network Blazar made for the lease
        assert not networks and subnet.inputs["networkId"] == f"net-{PROJECT}-{stack}-storage"
        assert all(p.inputs["networkId"] == f"net-{PROJECT}-{stack}-storage" for p in mocks.of("openstack:networking/port:Port"))
    rules = mocks.of("openstack:networking/secGroupRule:SecGroupRule")
    assert rules
    opened = {(r.inputs.get("portRangeMin"), r.inputs.get("remoteIpPrefix")) for r in rules if "remoteIpPrefix" in r.inputs}
    assert opened == ({(22, c) for c in config.access.ssh_cidrs} | {(6443, c) for c in config.access.api_cidrs}
                      | {(80, "0.0.0.0/0"), (443, "0.0.0.0/0")})
    if stack != "dev":  # policy: staging and prod never open SSH or the API to the internet
        assert not [r for r in rules if r.inputs.get("remoteIpPrefix") == "0.0.0.0/0" and r.inputs["portRangeMin"] in (22, 6443)]
    intra = [r for r in rules if "remoteGroupId" in r.inputs]
    assert {r.inputs["protocol"] for r in intra} == {"tcp", "udp", "icmp"}
    ports = mocks.of("openstack:networking/port:Port")
    assert len(ports) == len(mocks.of("openstack:compute/instance:Instance"))
    assert all(p.inputs["securityGroupIds"] == [f"{stack}-sg-id"] for p in ports)


def test_dev_volumes_are_attached_to_the_control_node():
    mocks, _ = run("dev")
    volumes = {v.name: v for v in mocks.of("openstack:blockstorage/volume:Volume")}
    assert {name: v.inputs["size"] for name, v in volumes.items()} == {"dev-mlflow-db": 10, "dev-artifacts": 50}
    attachments = mocks.of("openstack:compute/volumeAttach:VolumeAttach")
    assert {(a.inputs["instanceId"], a.inputs["volumeId"]) for a in attachments} == {
        ("dev-control-0-id", "dev-mlflow-db-id"), ("dev-control-0-id", "dev-artifacts-id")}


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_bare_metal_data_lives_on_manila_shares_protected_in_prod(stack: str, monkeypatch):
    captured: list = []
    real = pulumi.ResourceOptions.__init__

    def spy(self, *args, **kwargs):
        real(self, *args, **kwargs)
        captured.append(self)

    monkeypatch.setattr(pulumi.ResourceOptions, "__init__", spy)
    mocks, _ = run(stack)
    config = parse(stack, stack_values(stack))
    shares = {s.name: s for s in mocks.of("openstack:sharedfilesystem/share:Share")}
    assert {name: (s.inputs["shareProto"], s.inputs["size"]) for name, s in shares.items()} == {
        f"{stack}-{v.name}": ("NFS", v.size_gb) for v in config.volumes}
    assert not mocks.of("openstack:blockstorage/volume:Volume")
    mounts = mocks.dynamic("bootstrap").inputs["extravars"]["volumes_list"]
    assert mounts[0] == {"name": "mlflow-db", "device": f"10.140.81.110:6789:/volumes/_nogroup/{stack}-mlflow-db", "fstype": "nfs"}
    protected = [o for o in captured if o.protect]
    assert len(protected) == (len(config.volumes) if stack == "prod" else 0)
    assert all(o.retain_on_delete for o in protected)


@pytest.mark.parametrize("stack", STACKS)
def test_every_resource_that_takes_labels_has_them(stack: str):
    mocks, _ = run(stack)
    expected_tags = {f"project={PROJECT}", f"environment={stack}", "managed-by=pulumi"}
    checked = 0
    for resource in mocks.resources:
        if "tags" in resource.inputs:
            assert expected_tags <= set(resource.inputs["tags"]), resource.name
            checked += 1
        if "metadata" in resource.inputs:
            assert resource.inputs["metadata"]["environment"] == stack, resource.name
            checked += 1
    untaggable = {"openstack:networking/secGroupRule:SecGroupRule", "openstack:networking/routerInterface:RouterInterface",
                  "openstack:compute/keypair:Keypair", "openstack:compute/volumeAttach:VolumeAttach",
                  "openstack:networking/floatingIpAssociate:FloatingIpAssociate", "pulumi-python:dynamic:Resource",
                  f"{PROJECT}:infra:Cluster"}
    unlabelled = [r.typ for r in mocks.resources if "tags" not in r.inputs and "metadata" not in r.inputs and r.typ not in untaggable]
    assert not unlabelled and checked > 5


@pytest.mark.parametrize("stack", STACKS)
def test_bootstrap_runs_after_the_nodes_with_the_stack_settings(stack: str):
    mocks, outputs = run(stack)
    config = parse(stack, stack_values(stack))
    bootstrap = mocks.dynamic("bootstrap")
    extravars = bootstrap.inputs["extravars"]
    assert extravars["k3s_server_version"] == config.bootstrap.k3s_version and extravars["k3s_server_public_ip"] == FLOATING_IP
    assert extravars["argocd_version"] == config.bootstrap.argocd_version and extravars["argocd_environment"] == stack
    made = {(s["namespace"], s["name"]): s["data"] for s in extravars["argocd_secrets"]}
    assert made[("mlflow", "postgres")] == {"username": "qa", "password": "db secret/value", "postgres-password": "admin-secret-value"}
    url = made[("transformers-qa", "postgres")]["url"]
    user, _, host = url.removeprefix("postgresql+psycopg://").partition("@")
    assert (user, host) == ("qa:" + "db%20secret%2Fvalue", "postgresql.mlflow.svc.cluster.local:5432/feedback")  # quoted
    assert made[("argo", "mlops-pipeline-s3")]["AWS_SECRET_ACCESS_KEY"] == made[("mlflow", "minio")]["rootPassword"]
    assert ("argo", "gitops-deploy-key") not in made  # only when the stack sets one (staging requires it)
    assert extravars["argocd_public_host"] == f"{FLOATING_IP}.nip.io" and outputs["argocd_url"] == f"https://argocd.{FLOATING_IP}.nip.io"
    kvm = [{"name": v.name, "device": f"/dev/vd{'bcdefg'[i]}", "fstype": "ext4"} for i, v in enumerate(config.volumes)]
    assert extravars["volumes_list"] == kvm if stack == "dev" else [m["fstype"] for m in extravars["volumes_list"]] == ["nfs"] * 3
    assert bootstrap.inputs["inventory"] == outputs["ansible_inventory"] and len(bootstrap.inputs["fingerprint"]) == 16
    assert outputs["kubeconfig"].startswith("apiVersion: v1") and f"https://{FLOATING_IP}:6443" in outputs["kubeconfig"]


def test_dynamic_providers_unpickle_in_a_separate_process(tmp_path):
    """Pulumi pickles each dynamic provider into the state and unpickles it in its provider host, another process."""
    import subprocess
    import sys

    from pulumi.dynamic.dynamic import serialize_provider

    from infra.bootstrap import BootstrapProvider
    from infra.lease import LeaseProvider

    for provider in (LeaseProvider(timeout_s=5), BootstrapProvider()):
        blob = serialize_provider(provider)
        code = "import base64, dill, sys; p = dill.loads(base64.b64decode(sys.stdin.read())); print(type(p).__name__, sorted(p.__dict__.items()))"
        # cwd outside the repository: only what is installed in the virtualenv can be imported there.
        loaded = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert loaded.returncode == 0, loaded.stderr[-2000:]
        assert loaded.stdout.startswith(f"{type(provider).__name__} {sorted(provider.__dict__.items())}")


def test_staging_gets_the_deploy_key_and_githubs_host_key():
    made = {(s["namespace"], s["name"]): s["data"] for s in cluster_secrets({**SECRETS, "gitops_deploy_key": "KEY"})}
    key = made[("argo", "gitops-deploy-key")]  # the release workflow's promote step mounts it
    assert key["ssh-privatekey"] == "KEY" and key["known_hosts"].startswith("github.com ssh-ed25519 ")
