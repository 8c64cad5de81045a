"""The Chameleon sites an environment can live on, and what differs between them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Site:
    name: str
    auth_url: str  # Keystone v3 of the site: used when OS_AUTH_URL is not set
    bare_metal: bool  # CHI sites: hosts reserved by node type, flavor `baremetal`; KVM: reserved flavors
    public_network: str = "public"  # floating IP pool

    @property
    def storage(self) -> str:
        """How data outlives nodes: Cinder volumes on KVM; on bare metal (no Cinder), Manila NFS shares,
        reachable from nodes on a storage network reserved in the lease."""
        return "manila" if self.bare_metal else "cinder"


SITES = {
    s.name: s
    for s in (
        Site("CHI@TACC", "https://chi.tacc.chameleoncloud.org:5000/v3", bare_metal=True),
        Site("CHI@UC", "https://chi.uc.chameleoncloud.org:5000/v3", bare_metal=True),
        Site("KVM@TACC", "https://kvm.tacc.chameleoncloud.org:5000/v3", bare_metal=False),
    )
}
