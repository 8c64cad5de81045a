"""The environment's OpenStack resources, as one ComponentResource whose children are attributes.

Network: on KVM a private network, subnet and router; on bare metal the site's shared network, or with
volumes the storage network reserved in the lease. Blazar makes that network's subnet itself (from the
filesystem subnet pool) and plugs it into its NFS router, so the cluster looks the subnet up and reaches
the internet through its own router attached by a port on it (Chameleon docs, technical/shares/concepts.rst).
Security groups (KVM@TACC only; bare-metal sites have none and the nodes' firewalld enforces the same
policy, infra/ansible/roles/firewall): SSH and the Kubernetes API only from the allowed CIDRs, HTTP/HTTPS
for the ingress, anything between the cluster's own nodes. A key pair, one port + instance per node placed
in its reservation, a floating IP on the control node (reserved in the lease on bare metal), and the
persistent data: Cinder volumes attached to the control node on KVM, Manila NFS shares on bare metal,
protected in prod.
"""

from __future__ import annotations

import pulumi
import pulumi_openstack as openstack

from infra.config import PROJECT, StackConfig
from infra.lease import Lease, reservation_key
from infra.sites import SITES

K8S_API_PORT = 6443
BAREMETAL_FLAVOR = "baremetal"
# Nova's libvirt driver ignores requested device names and parallel attaches come up in any order; the
# guest sees each volume by its serial, the volume id cut to virtio-blk's 20 bytes.
CINDER_DEVICE = "/dev/disk/by-id/virtio-{serial}"
VIRTIO_SERIAL_LENGTH = 20


def labels(config: StackConfig) -> dict[str, str]:
    """Metadata on every resource that takes it: who made it, for which environment."""
    return {"project": PROJECT, "environment": config.environment, "managed-by": "pulumi"}


def tag_list(config: StackConfig) -> list[str]:
    return [f"{key}={value}" for key, value in labels(config).items()]


def node_reservation(group) -> dict:
    """The reservation a node group's instances are placed in: one per node type (bare metal) or flavor (KVM),
    shared by every group that uses it (infra/lease.py says why)."""
    return {"kind": "host", "node_type": group.node_type} if group.node_type else {"kind": "flavor", "flavor": group.flavor}


class Cluster(pulumi.ComponentResource):
    def __init__(self, name: str, config: StackConfig, lease: Lease, public_key: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:infra:Cluster", name, None, opts)
        self.config = config
        site = SITES[config.site]
        child = pulumi.ResourceOptions(parent=self)
        tags = tag_list(config)

        public_network = openstack.networking.get_network_output(name=site.public_network, opts=pulumi.InvokeOutputOptions(parent=self))
        self.network_id, network_ready = self._network(name, config, lease, public_network, tags, child)
        self.security_group = self._security_group(name, config, tags, child) if site.security_groups else None
        self.key_pair = openstack.compute.Keypair(f"{name}-key", name=config.access.key_name, public_key=public_key, opts=child)

        self.instances: dict[str, list[openstack.compute.Instance]] = {}
        self.ports: dict[str, list[openstack.networking.Port]] = {}
        for group in config.node_groups:
            for index in range(group.count):
                port, instance = self._node(name, group, index, lease, network_ready, tags, child)
                self.ports.setdefault(group.role, []).append(port)
                self.instances.setdefault(group.role, []).append(instance)
        self.control = self.instances["control"][0]

        self.floating_ip = self._floating_ip(name, site.bare_metal, lease, tags, child)
        # name -> {device, fstype} for the volumes role; `storage` lists what the bootstrap must wait for.
        self.mounts: dict[str, pulumi.Output[dict]] = {}
        self.storage: list[pulumi.Resource] = []
        if site.storage == "cinder":
            self._cinder_volumes(name, config, child)
        else:
            self._manila_shares(name, config)

        self.register_outputs({
            "floating_ip": self.floating_ip,
            "nodes": {role: [i.access_ip_v4 for i in nodes] for role, nodes in self.instances.items()},
        })

    def _network(self, name, config: StackConfig, lease: Lease, public_network, tags, child):
        """(network id, resources the instances must wait for)."""
        invoke = pulumi.InvokeOutputOptions(parent=self)
        if config.storage_network:
            # Blazar creates the network and its subnet when the lease starts; the lookups wait for the lease's outputs.
            network_name = lease.reserved.apply(lambda _: config.storage_network_name)
            network_id = openstack.networking.get_network_output(name=network_name, opts=invoke).id
            self.subnet = openstack.networking.get_subnet_output(name=config.storage_subnet_name, network_id=network_id, opts=invoke)
            # Blazar's NFS router holds the subnet's gateway address, so ours joins through a port with another one.
            self.router_port = openstack.networking.Port(
                f"{name}-router-port", network_id=network_id, fixed_ips=[{"subnet_id": self.subnet.id}], tags=tags, opts=child)
            return network_id, self._router(name, public_network, {"port_id": self.router_port.id}, tags, child)
        if config.network.create:
            self.network = openstack.networking.Network(f"{name}-net", name=config.network.name, tags=tags, opts=child)
            self.subnet = openstack.networking.Subnet(
                f"{name}-subnet", network_id=self.network.id, cidr=config.network.cidr, ip_version=4,
                dns_nameservers=["8.8.8.8", "1.1.1.1"], tags=tags, opts=child)
            return self.network.id, [self.subnet, *self._router(name, public_network, {"subnet_id": self.subnet.id}, tags, child)]
        shared = openstack.networking.get_network_output(name=config.network.name, opts=invoke)
        return shared.id, []

    def _router(self, name, public_network, attach: dict, tags, child) -> list[pulumi.Resource]:
        self.router = openstack.networking.Router(f"{name}-router", external_network_id=public_network.id, tags=tags, opts=child)
        interface = openstack.networking.RouterInterface(f"{name}-router-if", router_id=self.router.id, **attach, opts=child)
        return [interface]

    def _security_group(self, name, config: StackConfig, tags, child) -> openstack.networking.SecGroup:
        group = openstack.networking.SecGroup(f"{name}-sg", description=f"{PROJECT} {config.environment}: nodes", tags=tags, opts=child)
        rules = ([("ssh", cidr, 22) for cidr in config.access.ssh_cidrs]
                 + [("k8s-api", cidr, K8S_API_PORT) for cidr in config.access.api_cidrs]
                 + [("http", "0.0.0.0/0", 80), ("https", "0.0.0.0/0", 443)])
        self.rules = [
            openstack.networking.SecGroupRule(
                f"{name}-{purpose}-{index}", security_group_id=group.id, direction="ingress", ethertype="IPv4",
                protocol="tcp", port_range_min=port, port_range_max=port, remote_ip_prefix=cidr,
                description=f"{purpose} from {cidr}", opts=child)
            for index, (purpose, cidr, port) in enumerate(rules)
        ]
        # Node to node (k3s: flannel VXLAN, kubelet, the API): anything from members of this group.
        self.rules += [
            openstack.networking.SecGroupRule(
                f"{name}-intra-{protocol}", security_group_id=group.id, direction="ingress", ethertype="IPv4",
                protocol=protocol, remote_group_id=group.id, description=f"intra-cluster {protocol}", opts=child)
            for protocol in ("tcp", "udp", "icmp")
        ]
        return group

    def _node(self, name, group, index, lease: Lease, network_ready, tags, child):
        node = f"{name}-{group.role}-{index}"
        groups = {"security_group_ids": [self.security_group.id]} if self.security_group else {}
        port = openstack.networking.Port(f"{node}-port", network_id=self.network_id, tags=tags, opts=child, **groups)
        key = reservation_key(node_reservation(group))
        if group.node_type:  # bare metal: the generic flavor, placed by the host reservation
            reservation = lease.reserved.apply(lambda r: r[key]["id"])
            placement = {"flavor_name": BAREMETAL_FLAVOR, "scheduler_hints": [{"additional_properties": {"reservation": reservation}}]}
        else:  # KVM: the private flavor Blazar made for the flavor reservation
            placement = {"flavor_id": lease.reserved.apply(lambda r: r[key]["flavor_id"])}
        instance = openstack.compute.Instance(
            node, name=node, image_name=group.image, key_pair=self.key_pair.name, networks=[{"port": port.id}],
            metadata={**labels(self.config), "role": group.role}, tags=tags, **placement,
            opts=pulumi.ResourceOptions(parent=self, depends_on=network_ready))
        return port, instance

    def _floating_ip(self, name, bare_metal: bool, lease: Lease, tags, child) -> pulumi.Output[str]:
        if bare_metal:
            # Blazar creates the reserved address tagged with its reservation id.
            tag = lease.reserved.apply(lambda r: f"reservation:{r['floatingip']['id']}")
            address = openstack.networking.get_floating_ip_output(tags=[tag], opts=pulumi.InvokeOutputOptions(parent=self)).address
        else:
            address = openstack.networking.FloatingIp(f"{name}-fip", pool=SITES[self.config.site].public_network, tags=tags,
                                                      opts=child).address
        self.floating_ip_association = openstack.networking.FloatingIpAssociate(
            f"{name}-fip-control", floating_ip=address, port_id=self.ports["control"][0].id,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.control]))
        return address

    def _data_options(self) -> pulumi.ResourceOptions:
        # Protected in prod: `pulumi destroy` and replacements stop instead of deleting data.
        return pulumi.ResourceOptions(parent=self, protect=self.config.protect_data, retain_on_delete=self.config.protect_data)

    def _cinder_volumes(self, name, config: StackConfig, child) -> None:
        for volume in config.volumes:
            created = openstack.blockstorage.Volume(
                f"{name}-{volume.name}", name=f"{name}-{volume.name}", size=volume.size_gb, metadata=labels(config),
                description=f"{PROJECT} {config.environment}: {volume.name}", opts=self._data_options())
            attach = openstack.compute.VolumeAttach(f"{name}-{volume.name}-attach", instance_id=self.control.id,
                                                    volume_id=created.id, opts=child)
            self.mounts[volume.name] = pulumi.Output.all(created.id, attach.id).apply(
                lambda ids: {"device": CINDER_DEVICE.format(serial=ids[0][:VIRTIO_SERIAL_LENGTH]), "fstype": "ext4"})
            self.storage += [created, attach]

    def _manila_shares(self, name, config: StackConfig) -> None:
        for volume in config.volumes:
            share = openstack.sharedfilesystem.Share(
                f"{name}-{volume.name}", name=f"{name}-{volume.name}", share_proto="NFS", size=volume.size_gb,
                metadata=labels(config), description=f"{PROJECT} {config.environment}: {volume.name}", opts=self._data_options())
            self.mounts[volume.name] = share.export_locations.apply(lambda places: {"device": places[0]["path"], "fstype": "nfs"})
            self.storage.append(share)
