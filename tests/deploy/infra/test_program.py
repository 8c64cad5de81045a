"""The Pulumi program under `pulumi.runtime.set_mocks`, for each stack file: the resource graph and its policies.

The mocks answer as the services would (each answer's source is named where it is built): the lease's
outputs come from the lease provider's own matching (infra/lease.py `_outputs`) run over a Blazar lease
answer built from the program's request, its reservations in shuffled order; Neutron's network, subnet
and floating-IP lookups and Nova's flavor lookup return those APIs' fields under the provider's names.
Each test first asserts that the mocks ran (a mock test that registers nothing would pass silently).
"""

from __future__ import annotations

import asyncio
import json
import runpy
from collections import Counter
from pathlib import Path

import pulumi
import pytest

from infra.cluster import CINDER_DEVICE
from infra.config import PROJECT, ConfigError, parse
from infra.program import PUBLIC_HOSTS, SecretConfigError, cluster_secrets, stack_secrets
from infra.sites import SITES
from support.infra import (
    FLAVORS,
    FLOATING_IP,
    PUBLIC_KEY,
    PUBLIC_NET,
    SECRETS,
    STACKS,
    STORAGE_NET,
    Recorder,
    run,
    secrets_for,
    stack_values,
)
from support.paths import ROOT


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("seed", [0, 1])
def test_each_instance_lands_in_the_reservation_of_its_node_type_or_flavor(stack: str, seed: int):
    mocks, outputs = run(stack, seed=seed)
    config = parse(stack, stack_values(stack))
    lease = mocks.dynamic("lease")
    assert lease.inputs["name"] == f"{PROJECT}-{stack}" and lease.inputs["hours"] == config.lease.hours
    instances = mocks.of("openstack:compute/instance:Instance")
    assert Counter(i.inputs["metadata"]["role"] for i in instances) == Counter({g.role: g.count for g in config.node_groups})
    for instance in instances:
        (group,) = [g for g in config.node_groups if g.role == instance.inputs["metadata"]["role"]]
        if config.site.startswith("CHI@"):
            reservation = mocks.reservation_of("physical:host", lambda r, t=group.node_type: json.loads(r["resource_properties"])[2] == t)
            assert instance.inputs["flavorName"] == "baremetal"
            assert instance.inputs["schedulerHints"] == [{"additionalProperties": {"reservation": reservation["id"]}}]
            # The reservation holds every node of its type: prod's control and two workers share one of 3 hosts.
            assert reservation["min"] == reservation["max"] == sum(g.count for g in config.node_groups if g.node_type == group.node_type)
        else:
            source = FLAVORS[group.flavor]
            reservation = mocks.reservation_of("flavor:instance", lambda r, s=source: json.loads(r["resource_properties"])["id"] == s["id"])
            assert instance.inputs["flavorId"] == reservation["flavor_id"] and "schedulerHints" not in instance.inputs
        assert instance.inputs["keyPair"] == config.access.key_name
    kinds = Counter(r["kind"] for r in lease.inputs["reservations"])
    node_types = {g.node_type or g.flavor for g in config.node_groups}
    if config.site.startswith("CHI@"):
        assert kinds == Counter({"host": len(node_types), "floatingip": 1, "network": 1})
    else:
        assert kinds == Counter({"flavor": len(node_types)})
    assert outputs["lease_id"] == mocks.lease["id"] and outputs["lease_end"] == mocks.lease["end_date"]


def test_prod_control_and_workers_share_one_reservation_of_three_hosts():
    mocks, _ = run("prod")
    hints = {i.inputs["metadata"]["role"]: i.inputs["schedulerHints"][0]["additionalProperties"]["reservation"]
             for i in mocks.of("openstack:compute/instance:Instance")}
    assert hints["control"] == hints["worker"] != hints["gpu"]
    requested = [r for r in mocks.dynamic("lease").inputs["reservations"] if r["kind"] == "host"]
    assert sorted((r["node_type"], r["count"]) for r in requested) == [("compute_cascadelake_r", 3), ("gpu_a100_pcie", 1)]


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
        fip = mocks.reservation_of("virtual:floatingip", lambda r: r["network_id"] == PUBLIC_NET)
        assert not allocated and reserved[0].args["tags"] == [f"reservation:{fip['id']}"]
    assert outputs["floating_ip"] == FLOATING_IP and outputs["ssh"] == f"ssh cc@{FLOATING_IP}"


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_bare_metal_uses_blazars_storage_subnet_and_joins_it_by_a_port(stack: str):
    """Blazar creates `<network>-subnet` from the filesystem pool; a second subnet would be refused by Neutron."""
    mocks, _ = run(stack)
    assert not mocks.of("openstack:networking/subnet:Subnet") and not mocks.of("openstack:networking/network:Network")
    (lookup,) = [c for c in mocks.calls if c.token == "openstack:networking/getSubnet:getSubnet"]
    assert lookup.args == {"name": f"{PROJECT}-{stack}-storage-subnet", "networkId": STORAGE_NET}
    (router,) = mocks.of("openstack:networking/router:Router")
    assert router.inputs["externalNetworkId"] == PUBLIC_NET
    (interface,) = mocks.of("openstack:networking/routerInterface:RouterInterface")
    assert interface.inputs["portId"] == f"{stack}-router-port-id" and "subnetId" not in interface.inputs
    (router_port,) = [p for p in mocks.of("openstack:networking/port:Port") if p.name == f"{stack}-router-port"]
    assert router_port.inputs["fixedIps"] == [{"subnetId": "blazar-subnet-id"}]  # Neutron picks a free address
    assert all(p.inputs["networkId"] == STORAGE_NET for p in mocks.of("openstack:networking/port:Port"))


def test_kvm_makes_its_own_network_subnet_and_router():
    mocks, _ = run("dev")
    config = parse("dev", stack_values("dev"))
    (network,) = mocks.of("openstack:networking/network:Network")
    (subnet,) = mocks.of("openstack:networking/subnet:Subnet")
    assert subnet.inputs["networkId"] == "dev-net-id" and subnet.inputs["cidr"] == config.network.cidr
    (interface,) = mocks.of("openstack:networking/routerInterface:RouterInterface")
    assert interface.inputs["subnetId"] == "dev-subnet-id"
    assert not [c for c in mocks.calls if c.token == "openstack:networking/getSubnet:getSubnet"]


@pytest.mark.parametrize("stack", STACKS)
def test_ssh_and_the_api_are_limited_where_the_site_enforces_it(stack: str):
    """Security groups exist on KVM@TACC only; on bare metal the same policy goes to the nodes' firewalld."""
    mocks, _ = run(stack)
    config = parse(stack, stack_values(stack))
    rules = mocks.of("openstack:networking/secGroupRule:SecGroupRule")
    ports = [p for p in mocks.of("openstack:networking/port:Port") if p.name.endswith("-0-port") or "-port" in p.name]
    firewall = {key: mocks.dynamic("bootstrap").inputs["extravars"][f"firewall_{key}"] for key in ("ssh_cidrs", "api_cidrs")}
    assert firewall == {"ssh_cidrs": config.access.ssh_cidrs, "api_cidrs": config.access.api_cidrs}
    if SITES[config.site].security_groups:
        opened = {(r.inputs.get("portRangeMin"), r.inputs.get("remoteIpPrefix")) for r in rules if "remoteIpPrefix" in r.inputs}
        assert opened == ({(22, c) for c in config.access.ssh_cidrs} | {(6443, c) for c in config.access.api_cidrs}
                          | {(80, "0.0.0.0/0"), (443, "0.0.0.0/0")})
        assert {r.inputs["protocol"] for r in rules if "remoteGroupId" in r.inputs} == {"tcp", "udp", "icmp"}
        nodes = [p for p in ports if p.name != f"{stack}-router-port"]
        assert nodes and all(p.inputs["securityGroupIds"] == [f"{stack}-sg-id"] for p in nodes)
    else:
        assert not mocks.of("openstack:networking/secGroup:SecGroup") and not rules
        assert ports and not [p for p in ports if "securityGroupIds" in p.inputs]
    if stack != "dev":  # policy: staging and prod never open SSH or the API to the internet, wherever it is enforced
        assert not [c for c in firewall["ssh_cidrs"] + firewall["api_cidrs"] if c.endswith("/0")]
        assert not [r for r in rules if r.inputs.get("remoteIpPrefix") == "0.0.0.0/0" and r.inputs["portRangeMin"] in (22, 6443)]


def test_dev_volumes_are_attached_to_the_control_node_and_found_by_id():
    mocks, _ = run("dev")
    volumes = {v.name: v for v in mocks.of("openstack:blockstorage/volume:Volume")}
    assert {name: v.inputs["size"] for name, v in volumes.items()} == {"dev-postgresql": 10, "dev-minio": 50}
    attachments = mocks.of("openstack:compute/volumeAttach:VolumeAttach")
    assert {(a.inputs["instanceId"], a.inputs["volumeId"]) for a in attachments} == {
        ("dev-control-0-id", f"{name}-0123456789abcdef0123456789") for name in volumes}
    assert not [a for a in attachments if "device" in a.inputs]  # libvirt ignores a requested name
    mounts = mocks.dynamic("bootstrap").inputs["extravars"]["volumes_list"]
    assert mounts == [{"name": v, "device": f"/dev/disk/by-id/virtio-dev-{v}-0123456789abcdef0"[:len("/dev/disk/by-id/virtio-") + 20],
                       "fstype": "ext4"} for v in ("postgresql", "minio")]
    assert CINDER_DEVICE.format(serial="x") == "/dev/disk/by-id/virtio-x"


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
    assert [m["name"] for m in mounts] == ["postgresql", "minio", "prometheus"]
    assert mounts[0] == {"name": "postgresql", "device": f"10.140.81.110:/volumes/_nogroup/{stack}-postgresql-uuid/sub", "fstype": "nfs"}
    protected = [o for o in captured if o.protect]
    assert len(protected) == (len(config.volumes) if stack == "prod" else 0)
    assert all(o.retain_on_delete for o in protected)


@pytest.mark.parametrize("stack", STACKS)
def test_every_openstack_call_goes_to_the_stacks_own_site(stack: str):
    """An explicit provider from infra/sites.py: the sourced openrc's region or Keystone never picks the site."""
    mocks, _ = run(stack)
    (provider,) = mocks.of("pulumi:providers:openstack")
    site = SITES[parse(stack, stack_values(stack)).site]
    assert provider.inputs["authUrl"] == site.auth_url and provider.inputs["region"] == site.name
    assert provider.inputs["applicationCredentialId"] == "cred-id"
    openstack_resources = [r for r in mocks.resources if r.typ.startswith("openstack:")]
    assert openstack_resources and mocks.calls
    (ref,) = {r.provider for r in openstack_resources} | {c.provider for c in mocks.calls}  # one provider for all
    assert ref == f"urn:pulumi:{stack}::{PROJECT}::pulumi:pulumi:Stack$pulumi:providers:openstack::openstack::openstack-id"


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
                  f"{PROJECT}:infra:Cluster", "pulumi:providers:openstack"}
    unlabelled = [r.typ for r in mocks.resources if "tags" not in r.inputs and "metadata" not in r.inputs and r.typ not in untaggable]
    assert not unlabelled and checked > 5


@pytest.mark.parametrize("stack", STACKS)
def test_bootstrap_runs_after_the_nodes_with_the_stack_settings(stack: str):
    mocks, outputs = run(stack)
    config = parse(stack, stack_values(stack))
    bootstrap = mocks.dynamic("bootstrap")
    extravars = bootstrap.inputs["extravars"]
    assert extravars["k3s_server_version"] == config.bootstrap.k3s_version and extravars["k3s_server_public_ip"] == FLOATING_IP
    assert extravars["argocd_version"] == config.bootstrap.argocd_version == "v3.5.1"
    assert extravars["argocd_environment"] == stack and extravars["argocd_public_host"] == outputs["domain"]
    assert extravars["k3s_common_registries_configs"] == {}  # no registry user: public images
    assert bootstrap.inputs["inventory"] == outputs["ansible_inventory"] and len(bootstrap.inputs["fingerprint"]) == 16
    assert outputs["kubeconfig"].startswith("apiVersion: v1") and f"https://{FLOATING_IP}:6443" in outputs["kubeconfig"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_domain_and_the_public_urls(stack: str):
    """docs/deployment.md, One environment's public names: every host under public_host(floating ip)."""
    _, outputs = run(stack)
    domain = f"{FLOATING_IP}.nip.io"
    expected = {"argocd_url": f"https://argocd.{domain}", "qa_url": f"https://qa.{domain}", "grafana_url": f"https://grafana.{domain}"}
    expected |= {"staging": {"argo_url": f"https://argo.{domain}", "mlflow_url": f"https://mlflow.{domain}"},
                 "dev": {"model_store_url": f"https://minio.{domain}"}, "prod": {"model_store_url": f"https://minio.{domain}"}}[stack]
    assert outputs["domain"] == domain
    assert {key: value for key, value in outputs.items() if key.endswith("_url")} == expected
    assert set(expected) <= set(PUBLIC_HOSTS)


def test_a_domain_of_your_own_replaces_nip_io():
    """nip.io's Let's Encrypt rate limit is shared by all its users: a stack may name its own domain instead."""
    mocks, outputs = run("prod", {**stack_values("prod"), "domain": "qa.example.edu"})
    assert outputs["domain"] == "qa.example.edu" and outputs["qa_url"] == "https://qa.qa.example.edu"
    assert mocks.dynamic("bootstrap").inputs["extravars"]["argocd_public_host"] == "qa.example.edu"
    with pytest.raises(ConfigError, match="domain"):
        parse("prod", {**stack_values("prod"), "domain": "https://qa.example.edu"})


# docs/deployment.md, Secrets: namespace/name -> keys, per environment.
SECRETS_TABLE = {
    ("mlflow", "minio"): (["rootUser", "rootPassword"], STACKS),
    ("mlflow", "postgres"): (["username", "password", "postgres-password"], STACKS),
    ("mlflow", "minio-publisher"): (["secretKey"], ("dev", "prod")),
    ("mlflow", "mlflow-auth"): (["username", "password"], ("staging",)),
    ("mlflow", "mlflow-flask"): (["MLFLOW_FLASK_SERVER_SECRET_KEY"], ("staging",)),
    ("transformers-qa", "minio"): (["root-user", "root-password"], STACKS),
    ("transformers-qa", "postgres"): (["url"], STACKS),
    ("argo", "mlops-pipeline-s3"): (["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"], ("staging",)),
    ("argo", "mlops-pipeline-mlflow"): (["MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"], ("staging",)),
    ("argo", "mlops-pipeline-feedback"): (["url"], ("staging",)),
    ("argo", "gitops-deploy-key"): (["ssh-privatekey", "known_hosts"], ("staging",)),
    ("monitoring", "grafana-admin"): (["admin-user", "admin-password"], STACKS),
}


@pytest.mark.parametrize("stack", STACKS)
def test_the_cluster_secrets_follow_the_table(stack: str):
    mocks, _ = run(stack)
    made = {(s["namespace"], s["name"]): s["data"] for s in mocks.dynamic("bootstrap").inputs["extravars"]["argocd_secrets"]}
    assert {key: sorted(data) for key, data in made.items()} == {
        key: sorted(keys) for key, (keys, environments) in SECRETS_TABLE.items() if stack in environments}
    assert made[("mlflow", "postgres")] == {"username": "qa", "password": "dbsecretvalue0", "postgres-password": "adminsecret0"}
    user, _, host = made[("transformers-qa", "postgres")]["url"].removeprefix("postgresql+psycopg://").partition("@")
    assert (user, host) == ("qa:dbsecretvalue0", "postgresql.mlflow.svc.cluster.local:5432/feedback")
    assert made[("monitoring", "grafana-admin")] == {"admin-user": "admin", "admin-password": "grafanasecret0"}
    if stack == "staging":
        assert made[("mlflow", "mlflow-auth")] == {"username": "admin", "password": "mlflowadminsecret0"}
        assert made[("argo", "mlops-pipeline-mlflow")]["MLFLOW_TRACKING_PASSWORD"] == "mlflowadminsecret0"
        assert made[("argo", "mlops-pipeline-feedback")]["url"] == made[("transformers-qa", "postgres")]["url"]
        assert made[("argo", "mlops-pipeline-s3")]["AWS_SECRET_ACCESS_KEY"] == made[("mlflow", "minio")]["rootPassword"]
        assert made[("argo", "gitops-deploy-key")]["known_hosts"].startswith("github.com ssh-ed25519 ")
    else:
        assert made[("mlflow", "minio-publisher")] == {"secretKey": "publishersecret0"}


def test_cluster_secrets_need_the_environments_own_keys():
    with pytest.raises(KeyError, match="mlflow_admin_password"):
        cluster_secrets("staging", {k: v for k, v in SECRETS.items() if k != "mlflow_admin_password"})


def secrets_read(stack: str, given: dict[str, str], values: dict | None = None) -> set[str]:
    """stack_secrets over the stack's real Pulumi config (all `given` set as secrets), inside a mocked program."""
    config = parse(stack, values or stack_values(stack))
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi.runtime.set_mocks(Recorder(), project=PROJECT, stack=stack, preview=False)
    read: dict = {}

    @pulumi.runtime.test
    def program():
        pulumi.runtime.set_all_config({f"{PROJECT}:{k}": v for k, v in given.items()}, [f"{PROJECT}:{k}" for k in given])
        secrets = stack_secrets(pulumi.Config(PROJECT), config)
        return pulumi.Output.all(**secrets).apply(read.update)

    program()
    return set(read)


@pytest.mark.parametrize(("stack", "missing"), [("dev", "model_store_publisher_password"), ("staging", "gitops_deploy_key"),
                                                ("prod", "db_admin_password")])
def test_a_missing_secret_is_named_by_environment(stack: str, missing: str):
    given = {k: v for k, v in secrets_for(stack).items() if k != missing}
    with pytest.raises(SecretConfigError, match=rf"{stack} needs secret config {PROJECT}:{missing}; set each with"):
        secrets_read(stack, given)
    assert secrets_read(stack, secrets_for(stack)) == set(secrets_for(stack))


def test_passwords_must_be_letters_and_digits():
    """base64 passwords hold `/` and `+`, which break the database URLs and the MLflow chart's sed of its auth config."""
    given = {**secrets_for("staging"), "mlflow_admin_password": "ab/cd+ef=ghijklmn", "db_password": "x@y", "grafana_password": "short1"}
    with pytest.raises(SecretConfigError, match=r"transformers-qa:db_password, transformers-qa:grafana_password, "
                                                r"transformers-qa:mlflow_admin_password must be at least 12 letters and digits .*"
                                                r"openssl rand -hex 24"):
        secrets_read("staging", given)


def test_registry_credentials_come_in_pairs_and_reach_every_node():
    values = {**stack_values("staging"), "registry_username": "qa-bot"}
    with pytest.raises(SecretConfigError, match=r"need both transformers-qa:registry_username and transformers-qa:registry_password"):
        secrets_read("staging", secrets_for("staging"), values)
    given = {**secrets_for("staging"), "registry_password": "ghp_token"}
    assert "registry_password" in secrets_read("staging", given, values)

    mocks, _ = run("staging", values, secrets=given)
    extravars = mocks.dynamic("bootstrap").inputs["extravars"]
    assert extravars["k3s_common_registries_configs"] == {"ghcr.io": {"auth": {"username": "qa-bot", "password": "ghp_token"}}}


def test_the_entry_point_exits_with_one_clear_line(tmp_path: Path, monkeypatch):
    """infra/__main__.py as Pulumi runs it: config and secrets from the stack, credentials from the environment."""
    key = tmp_path / "id.pub"
    key.write_text(PUBLIC_KEY)
    values = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in stack_values("prod").items()}
    values["access"] = json.dumps({**stack_values("prod")["access"], "public_key_file": str(key)})
    for name in ("OS_AUTH_URL", "OS_REGION_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OS_APPLICATION_CREDENTIAL_ID", "cred-id")
    monkeypatch.setenv("OS_APPLICATION_CREDENTIAL_SECRET", "cred-secret")
    exported: dict = {}
    monkeypatch.setattr(pulumi, "export", lambda name, value: exported.__setitem__(name, value))
    mocks = Recorder()
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack="prod", preview=False)

    def main(config: dict, secret: set, **env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)

        @pulumi.runtime.test
        def program():
            pulumi.runtime.set_all_config({f"{PROJECT}:{k}": v for k, v in config.items()}, [f"{PROJECT}:{k}" for k in secret])
            runpy.run_path(str(ROOT / "infra" / "__main__.py"), run_name="__main__")
            return pulumi.Output.all(*exported.values())

        program()

    with pytest.raises(SystemExit, match=r"^prod needs secret config transformers-qa:grafana_password;"):
        main({**values, **{k: v for k, v in secrets_for("prod").items() if k != "grafana_password"}}, set(secrets_for("prod")))
    with pytest.raises(SystemExit, match=r"^OS_REGION_NAME is CHI@TACC, but this stack lives on CHI@UC"):
        main({**values, **secrets_for("prod")}, set(secrets_for("prod")), OS_REGION_NAME="CHI@TACC")
    monkeypatch.delenv("OS_REGION_NAME")
    main({**values, **secrets_for("prod")}, set(secrets_for("prod")))
    assert {"domain", "qa_url", "model_store_url", "kubeconfig", "lease_end"} <= set(exported)


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
