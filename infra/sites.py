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
class Site:
    name: str  # also the Keystone region name that Chameleon's openrc files set (OS_REGION_NAME)
    auth_url: str  # the site's own Keystone v3: each site is a separate OpenStack cloud
    bare_metal: bool  # CHI sites: hosts reserved by node type, flavor `baremetal`; KVM: reserved flavors
    max_lease_hours: int  # for the site's standard resources (see gpu_flavor_max_lease_hours on KVM)
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
        Site("CHI@TACC", "https://chi.tacc.chameleoncloud.org:5000/v3", bare_metal=True, max_lease_hours=WEEK_HOURS),
        Site("CHI@UC", "https://chi.uc.chameleoncloud.org:5000/v3", bare_metal=True, max_lease_hours=WEEK_HOURS),
        Site("KVM@TACC", "https://kvm.tacc.chameleoncloud.org:5000/v3", bare_metal=False, max_lease_hours=183 * 24),
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
