"""The whole environment for one stack: the lease, then the cluster placed in it; what the stack exports."""

from __future__ import annotations

import pulumi
import pulumi_openstack as openstack

from infra.cluster import Cluster
from infra.config import PROJECT, StackConfig
from infra.lease import Lease
from infra.sites import SITES


def reservations(config: StackConfig, public_network_id: pulumi.Output[str]) -> list[dict]:
    """One reservation per node group (hosts by node type, or a KVM flavor), plus the control node's floating IP on bare metal."""
    wanted: list[dict] = []
    for group in config.node_groups:
        if group.node_type:
            wanted.append({"kind": "host", "role": group.role, "count": group.count, "node_type": group.node_type})
        else:
            flavor_id = openstack.compute.get_flavor_output(name=group.flavor).id
            wanted.append({"kind": "flavor", "role": group.role, "count": group.count, "flavor_id": flavor_id})
    if SITES[config.site].bare_metal:
        wanted.append({"kind": "floatingip", "role": "control", "count": 1, "network_id": public_network_id})
    return wanted


def inventory(cluster: Cluster, floating_ip: pulumi.Output[str]) -> pulumi.Output[str]:
    """An Ansible inventory (INI): the control node through its floating IP, the others through it as a jump host."""
    hosts = {role: [node.access_ip_v4 for node in nodes] for role, nodes in cluster.instances.items()}

    def render(args: list) -> str:
        fip, *addresses = args
        lines, i = [], 0
        for role, nodes in hosts.items():
            lines.append(f"[{role}]")
            for n, _ in enumerate(nodes):
                address = addresses[i]
                i += 1
                if role == "control":
                    lines.append(f"{role}-{n} ansible_host={fip} private_ip={address}")
                else:
                    lines.append(f"{role}-{n} ansible_host={address} ansible_ssh_common_args='-o ProxyJump=cc@{fip}'")
            lines.append("")
        lines += ["[all:vars]", "ansible_user=cc", ""]
        return "\n".join(lines)

    return pulumi.Output.all(floating_ip, *[a for nodes in hosts.values() for a in nodes]).apply(render)


def build(config: StackConfig, public_key: str) -> dict[str, pulumi.Output]:
    site = SITES[config.site]
    public_network = openstack.networking.get_network_output(name=site.public_network)
    lease = Lease("lease", site=config.site, lease_name=f"{PROJECT}-{config.environment}", start=config.lease.start,
                  hours=config.lease.hours, reservations=reservations(config, public_network.id))
    cluster = Cluster(config.environment, config, lease, public_key)
    return {
        "lease_id": lease.lease_id,
        "lease_end": lease.end_date,
        "floating_ip": cluster.floating_ip,
        "ssh": cluster.floating_ip.apply(lambda ip: f"ssh cc@{ip}"),
        "ansible_inventory": inventory(cluster, cluster.floating_ip),
    }
