"""Typed stack configuration: what one environment (dev, staging, prod) is made of.

Read from the stack file (``Pulumi.<stack>.yaml``, keys under ``transformers-qa:``) and validated
with pydantic before any cloud call; every invalid value is reported at once, by key, with what
is allowed. Credentials are not here: OpenStack application credentials come from ``OS_*``
environment variables (see the README).
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from infra.sites import GPU_FLAVOR_PREFIX, SITES

PROJECT = "transformers-qa"
OBJECT_KEYS = ("lease", "node_groups", "volumes", "network", "access", "bootstrap")
STRING_KEYS = ("site", "registry_username", "domain")

Role = Literal["control", "worker", "gpu"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LeaseConfig(Strict):
    hours: int = Field(24, ge=1, description="length of a new lease; the site's limit applies (7 days on bare metal)")
    prolong_hours: int = Field(0, ge=0, description="hours added to the running lease since it was made: raise it to "
                                                    "prolong (Chameleon allows that in the lease's last 48 h)")


class NodeGroup(Strict):
    """Nodes of one role. Bare-metal sites reserve hosts by ``node_type``; KVM reserves a ``flavor``."""

    role: Role
    count: int = Field(1, ge=1, le=8)
    node_type: str | None = Field(None, description="bare-metal node type, e.g. compute_cascadelake_r, gpu_rtx_6000")
    flavor: str | None = Field(None, description="KVM flavor, e.g. m1.large")
    image: str = "CC-Ubuntu22.04"


VolumeName = Literal["postgresql", "minio", "prometheus"]
# What each environment's charts store on (docs/deployment.md, Storage): every environment runs PostgreSQL
# and MinIO; staging and prod also keep Prometheus' data.
REQUIRED_VOLUMES: dict[str, tuple[str, ...]] = {
    "dev": ("postgresql", "minio"),
    "staging": ("postgresql", "minio", "prometheus"),
    "prod": ("postgresql", "minio", "prometheus"),
}


class VolumeConfig(Strict):
    """Persistent data: a Cinder volume on KVM, a Manila NFS share on bare metal (see sites.Site.storage),
    named after what stores on it; mounted on the control node, where its StorageClass puts volumes."""

    name: VolumeName
    size_gb: int = Field(ge=1, le=2000)


class NetworkConfig(Strict):
    # On bare metal with volumes, nodes go on the storage network reserved in the lease, whose subnet Blazar makes.
    create: bool = Field(False, description="make a private network + router (KVM); bare metal uses the shared network")
    name: str = "sharednet1"
    cidr: str = Field("192.168.50.0/24", description="the subnet of the network this stack creates (network.create)")

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        ipaddress.ip_network(value)  # ValueError names the bad value
        return value


class AccessConfig(Strict):
    ssh_cidrs: list[str] = Field(min_length=1, description="who may SSH to the nodes")
    api_cidrs: list[str] = Field(min_length=1, description="who may reach the Kubernetes API (6443)")
    key_name: str = Field(min_length=1, description="name of the OpenStack key pair to create")
    public_key_file: str = Field("~/.ssh/id_ed25519.pub", description="your SSH public key (read when the program runs)")

    @field_validator("ssh_cidrs", "api_cidrs")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        for value in values:
            ipaddress.ip_network(value)
        return values


class BootstrapConfig(Strict):
    k3s_version: str = Field("v1.31.4+k3s1", pattern=r"^v\d+\.\d+\.\d+\+k3s\d+$")
    argocd_version: str = Field("v3.5.1", pattern=r"^v\d+\.\d+\.\d+$")
    repo_url: str = Field("https://github.com/transformers-qa/transformers-qa.git", pattern=r"^(https://|git@)")
    revision: str = "main"


class StackConfig(Strict):
    environment: Literal["dev", "staging", "prod"]
    site: str
    lease: LeaseConfig = LeaseConfig()
    node_groups: list[NodeGroup] = Field(min_length=1)
    volumes: list[VolumeConfig] = []
    network: NetworkConfig = NetworkConfig()
    access: AccessConfig
    bootstrap: BootstrapConfig = BootstrapConfig()
    registry_username: str | None = Field(None, min_length=1, description="ghcr.io user whose token (registry_password) pulls the images")
    domain: str | None = Field(None, pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$",
                               description="a name you own whose wildcard (*.<domain>) points at the floating IP; "
                                           "default <floating IP>.nip.io")

    @field_validator("site")
    @classmethod
    def _site(cls, value: str) -> str:
        if value not in SITES:
            raise ValueError(f"unknown site {value!r}; use one of {', '.join(SITES)}")
        return value

    @field_validator("node_groups")
    @classmethod
    def _offered(cls, groups: list[NodeGroup], info: ValidationInfo) -> list[NodeGroup]:
        """Each group's node type (bare metal) or flavor (KVM) is one its site has. A ValidationError raised here
        keeps each problem under its own key (node_groups[i].node_type), reported with the other fields' problems."""
        site = SITES.get(info.data.get("site"))
        if site is None:  # the site's own problem is reported
            return groups
        key, kind = ("node_type", "node type") if site.bare_metal else ("flavor", "flavor")
        problems = [InitErrorDetails(type=PydanticCustomError("not_offered", _not_offered(site.name, kind, value)),
                                     loc=(i, key), input=value)
                    for i, group in enumerate(groups) if (value := getattr(group, key)) and value not in site.hardware]
        if problems:
            raise ValidationError.from_exception_data(cls.__name__, problems)
        return groups

    @model_validator(mode="after")
    def _consistent(self) -> StackConfig:
        site = SITES[self.site]
        problems = []
        for i, group in enumerate(self.node_groups):
            if site.bare_metal and not group.node_type:
                problems.append(f"node_groups[{i}] ({group.role}): {self.site} is bare metal; set node_type")
            if not site.bare_metal and not group.flavor:
                problems.append(f"node_groups[{i}] ({group.role}): {self.site} is KVM; set flavor")
            kind = site.hardware.get(group.node_type or group.flavor or "")
            if group.role == "gpu" and kind is not None and kind.gpus < 1:
                problems.append(f"node_groups[{i}]: a gpu group needs a node type or flavor with GPUs at {self.site} "
                                f"({group.node_type or group.flavor} has none)")
        if [g.role for g in self.node_groups].count("control") != 1:
            problems.append("node_groups: exactly one group must have role 'control' (it runs the Kubernetes server)")
        elif next(g for g in self.node_groups if g.role == "control").count != 1:
            problems.append("node_groups: the control group must have count 1")
        problems += self._lease_problems() + self._storage_problems()
        if self.environment != "dev":
            for key in ("ssh_cidrs", "api_cidrs"):
                if any(ipaddress.ip_network(c).prefixlen == 0 for c in getattr(self.access, key)):
                    problems.append(f"access.{key}: {self.environment} must not open it to the whole internet (0.0.0.0/0)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _lease_problems(self) -> list[str]:
        site = SITES[self.site]
        limit = site.max_lease_hours
        if any((g.flavor or "").startswith(GPU_FLAVOR_PREFIX) for g in self.node_groups):
            limit = min(limit, site.max_prolong_hours)
        if self.lease.hours > limit:
            return [f"lease.hours: {self.site} leases this stack's nodes for at most {limit} hours (got {self.lease.hours}); "
                    "start shorter and raise lease.prolong_hours near the end"]
        return []

    def _storage_problems(self) -> list[str]:
        names = [v.name for v in self.volumes]
        problems = [f"volumes: {name} is listed {names.count(name)} times" for name in sorted(set(names)) if names.count(name) > 1]
        problems += [f"volumes: {self.environment} needs a {name} volume (its charts store on StorageClass qa-{name})"
                     for name in REQUIRED_VOLUMES[self.environment] if name not in names]
        if self.storage_network and "cidr" in self.network.model_fields_set:
            problems.append("network.cidr: on bare metal the storage network's subnet is Blazar's own (from the filesystem "
                            "subnet pool); remove network.cidr")
        return problems

    @property
    def gpu(self) -> bool:
        return any(g.role == "gpu" for g in self.node_groups)

    @property
    def storage_network(self) -> bool:
        """Bare metal with shares: the nodes must sit on a reserved storage network to mount them."""
        return bool(self.volumes) and SITES[self.site].bare_metal

    @property
    def storage_network_name(self) -> str:
        return f"{PROJECT}-{self.environment}-storage"

    @property
    def storage_subnet_name(self) -> str:
        """The subnet Blazar creates on the storage network when the lease starts (blazar storage_plugin.py)."""
        return f"{self.storage_network_name}-subnet"

    @property
    def protect_data(self) -> bool:
        """Volumes in prod cannot be deleted by `pulumi destroy` or a replacement."""
        return self.environment == "prod"


def _not_offered(site: str, kind: str, value: str) -> str:
    elsewhere = [name for name, other in SITES.items() if value in other.hardware]
    hint = f" (it is at {', '.join(elsewhere)})" if elsewhere else ""
    return f"{site} has no {kind} {value!r}{hint}; use one of {', '.join(sorted(SITES[site].hardware))}"


class ConfigError(Exception):
    """All the stack's configuration problems, one per line."""


def _key(location: tuple) -> str:
    """('volumes', 0, 'size_gb') -> 'volumes[0].size_gb'."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


def parse(environment: str, values: dict) -> StackConfig:
    """Validate raw config values (as the stack file holds them); ConfigError lists every problem."""
    try:
        return StackConfig(environment=environment, **values)
    except ValidationError as e:
        lines = []
        for error in e.errors():
            key = _key(error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            got = f" (got {error['input']!r})" if "input" in error and not isinstance(error["input"], dict | list) else ""
            lines.append(f"  {PROJECT}:{key}: {message}{got}" if key else f"  {PROJECT}: {message}")
        raise ConfigError(f"stack {environment!r} has {len(lines)} configuration problem(s):\n" + "\n".join(lines)) from None
