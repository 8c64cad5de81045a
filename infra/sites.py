"""The Chameleon sites an environment can live on, what differs between them, and whose credentials fit.

Lease rules (Chameleon docs, technical/reservations/gui_reservations.rst "lease-policy" and
technical/kvm/kvm_hardware.rst): a bare-metal lease lasts at most 7 days; KVM@TACC leases of standard
flavors up to 6 months, GPU flavors (``g1.*``) 7 days; an active lease within 48 h of its end can be
prolonged by up to 7 days from the moment of the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

WEEK_HOURS = 7 * 24


@dataclass(frozen=True)
class NodeType:
    """What one node of a bare-metal node type, or one instance of a KVM flavor, gives Kubernetes."""

    gpus: int
    cpus: int  # hardware threads on bare metal, vCPUs on KVM
    memory_gib: float


# Bare-metal node types, each with the least any of its nodes has, since a reservation by node_type may get any
# of them. Source: ChameleonCloud/reference-repository 5da0590 (2026-06-26), the data behind Chameleon's Resource
# Discovery API: data/chameleoncloud/sites/{tacc,uc}/clusters/chameleon/nodes/*.json (gpu.gpu_count,
# architecture.smt_size, main_memory.ram_size). It lists the nodes a site has registered; Blazar decides which
# are free. Comments: nodes of the type, GPU model.
TACC_NODE_TYPES = {
    "compute_arm64": NodeType(gpus=0, cpus=48, memory_gib=32),  # 8
    "compute_cascadelake": NodeType(gpus=0, cpus=32, memory_gib=187),  # 24
    "compute_cascadelake_r": NodeType(gpus=0, cpus=96, memory_gib=192),  # 56, 2x Xeon Gold 6240R
    "compute_gigaio": NodeType(gpus=0, cpus=160, memory_gib=256),  # 6; 0 or 1 A100 40GB / A30 each
    "compute_haswell_ib": NodeType(gpus=0, cpus=48, memory_gib=128),  # 17
    "compute_icelake_r650": NodeType(gpus=0, cpus=160, memory_gib=256),  # 52
    "compute_icelake_r750": NodeType(gpus=0, cpus=160, memory_gib=256),  # 20
    "compute_liqid": NodeType(gpus=1, cpus=256, memory_gib=256),  # 8; 1 or 2 A100 40GB each
    "compute_skylake": NodeType(gpus=0, cpus=24, memory_gib=191),  # 32
    "compute_zen3": NodeType(gpus=0, cpus=256, memory_gib=256),  # 32
    "gpu_h100": NodeType(gpus=4, cpus=192, memory_gib=1024),  # 2, H100 SXM5 94GB
    "gpu_k80": NodeType(gpus=2, cpus=48, memory_gib=128),  # 2, Tesla K80
    "gpu_m40": NodeType(gpus=1, cpus=48, memory_gib=128),  # 2, Tesla M40
    "gpu_mi100": NodeType(gpus=2, cpus=256, memory_gib=256),  # 8, AMD Instinct MI100
    "gpu_p100": NodeType(gpus=2, cpus=48, memory_gib=128),  # 15, Tesla P100 PCIe 16GB
    "gpu_p100_nvlink": NodeType(gpus=2, cpus=56, memory_gib=128),  # 4; 2 or 4 P100 SXM2 16GB each
    "gpu_p100_v100": NodeType(gpus=2, cpus=48, memory_gib=128),  # 1, Tesla V100 PCIe 16GB
    "gpu_pontevecchio": NodeType(gpus=4, cpus=96, memory_gib=1024),  # 2, Intel Data Center GPU Max 1550
    "storage": NodeType(gpus=0, cpus=40, memory_gib=62),  # 20
    "storage_hierarchy": NodeType(gpus=0, cpus=48, memory_gib=512),  # 2
}
UC_NODE_TYPES = {
    "compute_cascadelake_r": NodeType(gpus=0, cpus=96, memory_gib=192),  # 42, 2x Xeon Gold 6240R
    "compute_gigaio": NodeType(gpus=0, cpus=256, memory_gib=512),  # 8; 0 or 1 A100 80GB each
    "compute_nvdimm": NodeType(gpus=0, cpus=112, memory_gib=3840),  # 2
    "compute_skylake": NodeType(gpus=0, cpus=24, memory_gib=192),  # 23
    "fpga": NodeType(gpus=0, cpus=48, memory_gib=192),  # 1
    "gpu_a100_nvlink": NodeType(gpus=4, cpus=256, memory_gib=512),  # 1, A100 SXM4 80GB
    "gpu_a100_pcie": NodeType(gpus=4, cpus=160, memory_gib=512),  # 4, A100 PCIe 80GB; 2x Xeon Platinum 8380
    "gpu_rtx_6000": NodeType(gpus=1, cpus=48, memory_gib=192),  # 37, Quadro RTX 6000; 2x Xeon Gold 6126
    "gpu_v100": NodeType(gpus=4, cpus=80, memory_gib=128),  # 4, V100 32GB
    "storage_nvme": NodeType(gpus=0, cpus=48, memory_gib=238),  # 10
}
# KVM@TACC flavors as Nova lists them in ChameleonCloud/docs 50021b6 (2026-07-01),
# source/technical/reservations/cli_reservations.rst, "Creating a lease for a flavor" (RAM in MiB there). The site
# has more GPU flavors (g1.h100.pci.4, vGPU ones) whose sizes no source gives; add them here with their sizes.
KVM_TACC_FLAVORS = {
    "m1.tiny": NodeType(gpus=0, cpus=1, memory_gib=0.5),
    "m1.small": NodeType(gpus=0, cpus=1, memory_gib=2),
    "m1.medium": NodeType(gpus=0, cpus=2, memory_gib=4),
    "m1.large": NodeType(gpus=0, cpus=4, memory_gib=8),
    "m1.xlarge": NodeType(gpus=0, cpus=8, memory_gib=16),
    "m1.xxlarge": NodeType(gpus=0, cpus=16, memory_gib=32),
    "g1.h100.pci.1": NodeType(gpus=1, cpus=48, memory_gib=250000 / 1024),  # one H100 passed through
}


@dataclass(frozen=True)
class Site:
    name: str  # also the Keystone region name that Chameleon's openrc files set (OS_REGION_NAME)
    auth_url: str  # the site's own Keystone v3: each site is a separate OpenStack cloud
    bare_metal: bool  # CHI sites: hosts reserved by node type, flavor `baremetal`; KVM: reserved flavors
    max_lease_hours: int  # for the site's standard resources (KVM's GPU flavors, GPU_FLAVOR_PREFIX, get a week)
    hardware: Mapping[str, NodeType]  # what a stack can reserve here: node types on bare metal, flavors on KVM
    public_network: str = "public"  # floating IP pool
    prolong_window_hours: int = 48  # a lease can be prolonged only this close to its end
    max_prolong_hours: int = WEEK_HOURS  # and only up to this far from the moment of the request

    @property
    def storage(self) -> str:
        """How data outlives nodes: Cinder volumes on KVM; on bare metal (no Cinder), Manila NFS shares,
        reachable from nodes on a storage network reserved in the lease."""
        return "manila" if self.bare_metal else "cinder"

    @property
    def security_groups(self) -> bool:
        """Only KVM@TACC enforces Neutron security groups; bare-metal sites have none (Chameleon docs,
        technical/networks/networks_basic.rst), so there the nodes' own firewall is the only enforcement."""
        return not self.bare_metal


SITES = {
    s.name: s
    for s in (
        Site("CHI@TACC", "https://chi.tacc.chameleoncloud.org:5000/v3", bare_metal=True, max_lease_hours=WEEK_HOURS,
             hardware=TACC_NODE_TYPES),
        Site("CHI@UC", "https://chi.uc.chameleoncloud.org:5000/v3", bare_metal=True, max_lease_hours=WEEK_HOURS,
             hardware=UC_NODE_TYPES),
        Site("KVM@TACC", "https://kvm.tacc.chameleoncloud.org:5000/v3", bare_metal=False, max_lease_hours=183 * 24,
             hardware=KVM_TACC_FLAVORS),
    )
}
GPU_FLAVOR_PREFIX = "g1."  # KVM@TACC GPU flavors, leased for at most a week like bare metal
CREDENTIAL_ENV = ("OS_APPLICATION_CREDENTIAL_ID", "OS_APPLICATION_CREDENTIAL_SECRET")


class CredentialError(Exception):
    """The sourced OpenStack credentials do not belong to the stack's site."""


def check_credentials(site: Site, environ: Mapping[str, str]) -> tuple[str, str]:
    """The application credential (id, secret) from the environment, after checking it is the stack's site's.

    The openrc of another site sets its own OS_AUTH_URL and OS_REGION_NAME; following them would deploy
    to the wrong site, so any that is set must name this one.
    """
    missing = [name for name in CREDENTIAL_ENV if not environ.get(name)]
    if missing:
        raise CredentialError(f"missing {', '.join(missing)}: source the application-credential openrc of your Chameleon "
                              f"project for {site.name} (it must be unrestricted to create leases)")
    auth_url = environ.get("OS_AUTH_URL", "")
    if auth_url and auth_url.rstrip("/") != site.auth_url:
        raise CredentialError(f"OS_AUTH_URL is {auth_url}, but this stack lives on {site.name} ({site.auth_url}): "
                              f"source the openrc of {site.name}")
    region = environ.get("OS_REGION_NAME", "")
    if region and region != site.name:
        raise CredentialError(f"OS_REGION_NAME is {region}, but this stack lives on {site.name}: source the openrc of {site.name}")
    return environ["OS_APPLICATION_CREDENTIAL_ID"], environ["OS_APPLICATION_CREDENTIAL_SECRET"]
