"""Stack configuration: each stack file is valid, and bad values are all reported at once, by key."""

from __future__ import annotations

import pytest

from infra.config import PROJECT, REQUIRED_VOLUMES, ConfigError, parse
from infra.sites import SITES
from support.infra import STACKS, stack_values
from support.paths import ROOT


@pytest.mark.parametrize("stack", STACKS)
def test_each_stack_file_is_valid_and_holds_no_secrets(stack: str):
    config = parse(stack, stack_values(stack))
    assert config.environment == stack
    text = (ROOT / f"Pulumi.{stack}.yaml").read_text().lower()
    assert "secret" not in text and "password" not in text and "application_credential" not in text


def test_environments_differ_as_documented():
    dev, staging, prod = (parse(s, stack_values(s)) for s in STACKS)
    assert dev.site == "KVM@TACC" and not dev.gpu and all(g.flavor for g in dev.node_groups)
    for config in (staging, prod):
        assert config.gpu and config.site.startswith("CHI@")
        assert any(g.role == "gpu" and g.node_type.startswith("gpu_") for g in config.node_groups)
        assert all(not c.endswith("/0") for c in config.access.ssh_cidrs + config.access.api_cidrs)
        assert "cidr" not in config.network.model_fields_set  # Blazar makes the storage network's subnet
    assert prod.protect_data and not staging.protect_data
    # docs/deployment.md, Storage: the volumes are named after what stores on them.
    assert [v.name for v in dev.volumes] == ["postgresql", "minio"]
    assert [v.name for v in prod.volumes] == [v.name for v in staging.volumes] == ["postgresql", "minio", "prometheus"]
    assert prod.storage_network and staging.storage_network and not dev.storage_network
    assert prod.storage_subnet_name == f"{PROJECT}-prod-storage-subnet"


def test_every_problem_is_reported_at_once_by_key():
    values = stack_values("prod")
    values["lease"] = {"hours": 169, "starts": "tomorrow"}
    values["site"] = "CHI@Mars"
    values["access"] = {**values["access"], "ssh_cidrs": ["0.0.0.0/0"], "api_cidrs": ["10.0.0.0/33"]}
    values["volumes"] = [{"name": "datasets", "size_gb": 0}]
    with pytest.raises(ConfigError) as caught:
        parse("prod", values)
    message = str(caught.value)
    for expected in (
        f"{PROJECT}:lease.starts: Extra inputs are not permitted",
        f"{PROJECT}:site: unknown site 'CHI@Mars'; use one of CHI@TACC, CHI@UC, KVM@TACC",
        f"{PROJECT}:access.api_cidrs: ",
        f"{PROJECT}:volumes[0].name: Input should be 'postgresql', 'minio' or 'prometheus' (got 'datasets')",
        f"{PROJECT}:volumes[0].size_gb: Input should be greater than or equal to 1 (got 0)",
    ):
        assert expected in message, message
    assert message.startswith("stack 'prod' has 5 configuration problem(s)")


def test_cross_field_rules():
    values = stack_values("prod")
    values["access"] = {**values["access"], "ssh_cidrs": ["0.0.0.0/0"]}
    values["node_groups"] = [g for g in values["node_groups"] if g["role"] != "control"] + [
        {"role": "gpu", "count": 1, "node_type": "compute_skylake"}]
    with pytest.raises(ConfigError) as caught:
        parse("prod", values)
    message = str(caught.value)
    assert "a gpu group needs a node type or flavor with GPUs at CHI@UC (compute_skylake has none)" in message
    assert "exactly one group must have role 'control'" in message
    assert "access.ssh_cidrs: prod must not open it to the whole internet" in message

    dev = stack_values("dev")
    dev["node_groups"] = [{"role": "control", "node_type": "compute_skylake"}]
    with pytest.raises(ConfigError, match=r"KVM@TACC is KVM; set flavor"):
        parse("dev", dev)
    dev["access"] = {**dev["access"], "ssh_cidrs": ["0.0.0.0/0"]}  # dev may be open (a warning in the README)
    dev["node_groups"] = [{"role": "control", "flavor": "m1.large"}]
    assert parse("dev", dev).access.ssh_cidrs == ["0.0.0.0/0"]


def test_a_node_type_the_site_does_not_offer_is_refused_on_one_line():
    """gpu_rtx_6000 nodes are at CHI@UC only (infra/sites.py): staging at CHI@TACC could never get its GPU node."""
    values = {**stack_values("staging"), "site": "CHI@TACC"}
    with pytest.raises(ConfigError) as caught:
        parse("staging", values)
    offered = ", ".join(sorted(SITES["CHI@TACC"].hardware))
    assert str(caught.value).splitlines() == [
        "stack 'staging' has 1 configuration problem(s):",
        f"  {PROJECT}:node_groups[1].node_type: CHI@TACC has no node type 'gpu_rtx_6000' (it is at CHI@UC); "
        f"use one of {offered} (got 'gpu_rtx_6000')"]
    assert "compute_cascadelake_r" in offered and "gpu_rtx_6000" in SITES["CHI@UC"].hardware


def test_unoffered_node_types_and_flavors_are_each_reported_by_key_with_the_other_problems():
    prod = stack_values("prod")
    prod["node_groups"] = [*prod["node_groups"], {"role": "worker", "node_type": "compute_nonesuch"}]
    prod["lease"] = {"hours": 24, "starts": "tomorrow"}
    with pytest.raises(ConfigError) as caught:
        parse("prod", prod)
    lines = str(caught.value).splitlines()
    assert lines[0] == "stack 'prod' has 2 configuration problem(s):"
    assert f"  {PROJECT}:lease.starts: Extra inputs are not permitted (got 'tomorrow')" in lines
    assert any(line.startswith(f"  {PROJECT}:node_groups[3].node_type: CHI@UC has no node type 'compute_nonesuch'; use one of "
                               "compute_cascadelake_r, compute_gigaio,") for line in lines), lines

    dev = stack_values("dev")
    dev["node_groups"] = [{"role": "control", "flavor": "baremetal"}, {"role": "worker", "flavor": "m1.huge"}]
    with pytest.raises(ConfigError) as caught:
        parse("dev", dev)
    flavors = ", ".join(sorted(SITES["KVM@TACC"].hardware))
    assert str(caught.value).splitlines()[1:] == [
        f"  {PROJECT}:node_groups[0].flavor: KVM@TACC has no flavor 'baremetal'; use one of {flavors} (got 'baremetal')",
        f"  {PROJECT}:node_groups[1].flavor: KVM@TACC has no flavor 'm1.huge'; use one of {flavors} (got 'm1.huge')"]
    assert "m1.large" in flavors and "m1.xlarge" in flavors


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_gpu_group_gets_gpus_at_its_site(stack: str):
    config = parse(stack, stack_values(stack))
    assert all(SITES[config.site].hardware[g.node_type].gpus for g in config.node_groups if g.role == "gpu")

@pytest.mark.parametrize("stack", STACKS)
def test_each_environment_has_the_volumes_its_charts_store_on(stack: str):
    values = stack_values(stack)
    values["volumes"] = [v for v in values["volumes"] if v["name"] != "minio"] + [{"name": "postgresql", "size_gb": 5}]
    with pytest.raises(ConfigError) as caught:
        parse(stack, values)
    assert f"volumes: {stack} needs a minio volume (its charts store on StorageClass qa-minio)" in str(caught.value)
    assert "volumes: postgresql is listed 2 times" in str(caught.value)
    assert set(REQUIRED_VOLUMES[stack]) <= {v.name for v in parse(stack, stack_values(stack)).volumes}


def test_bare_metal_takes_no_subnet_of_its_own():
    values = stack_values("staging")
    values["network"] = {"create": False, "cidr": "192.168.60.0/24"}
    with pytest.raises(ConfigError, match=r"network.cidr: on bare metal the storage network's subnet is Blazar's own"):
        parse("staging", values)


def test_lease_length_follows_the_site():
    """Chameleon: 7 days on bare metal and for KVM GPU flavors, 6 months for standard KVM flavors; prolonging is separate."""
    prod = stack_values("prod")
    with pytest.raises(ConfigError, match=r"lease.hours: CHI@UC leases this stack's nodes for at most 168 hours \(got 169\)"):
        parse("prod", {**prod, "lease": {"hours": 169}})
    assert parse("prod", {**prod, "lease": {"hours": 168, "prolong_hours": 500}}).lease.prolong_hours == 500
    dev = stack_values("dev")
    assert parse("dev", {**dev, "lease": {"hours": 24 * 30}}).lease.hours == 720
    gpu = {**dev, "lease": {"hours": 200}, "node_groups": [*dev["node_groups"], {"role": "worker", "flavor": "g1.h100.pci.1"}]}
    with pytest.raises(ConfigError, match=r"at most 168 hours \(got 200\)"):
        parse("dev", gpu)
