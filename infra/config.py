"""Typed stack configuration: what one environment (dev, staging, prod) is made of.

Read from the stack file (``Pulumi.<stack>.yaml``, keys under ``transformers-qa:``) and validated
with pydantic before any cloud call; every invalid value is reported at once, by key, with what
is allowed. Credentials are not here: OpenStack application credentials come from ``OS_*``
environment variables (see the README).
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from infra.sites import SITES

PROJECT = "transformers-qa"
MAX_LEASE_HOURS = 7 * 24  # Chameleon's limit for one lease (it can be prolonged near its end)
OBJECT_KEYS = ("lease", "node_groups", "volumes", "network", "access", "bootstrap")  # plus `site`, a string

Role = Literal["control", "worker", "gpu"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LeaseConfig(Strict):
    hours: int = Field(24, ge=1, le=MAX_LEASE_HOURS, description="lease length from `pulumi up`; Chameleon allows at most 7 days")


class NodeGroup(Strict):
    """Nodes of one role. Bare-metal sites reserve hosts by ``node_type``; KVM reserves a ``flavor``."""

    role: Role
    count: int = Field(1, ge=1, le=8)
    node_type: str | None = Field(None, description="bare-metal node type, e.g. compute_cascadelake_r, gpu_rtx_6000")
    flavor: str | None = Field(None, description="KVM flavor, e.g. m1.large")
    image: str = "CC-Ubuntu22.04"


class VolumeConfig(Strict):
    """Persistent data: a Cinder volume on KVM, a Manila NFS share on bare metal (see sites.Site.storage)."""

    name: Literal["mlflow-db", "artifacts", "datasets"]
    size_gb: int = Field(ge=1, le=2000)
    role: Role = "control"  # the node it is attached to (the first of that role)


class NetworkConfig(Strict):
    # On bare metal with volumes, nodes go on the storage network reserved in the lease (its subnet uses `cidr`).
    create: bool = Field(False, description="make a private network + router (KVM); bare metal uses the shared network")
    name: str = "sharednet1"
    cidr: str = "192.168.50.0/24"

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
    argocd_version: str = Field("v2.13.3", pattern=r"^v\d+\.\d+\.\d+$")
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

    @field_validator("site")
    @classmethod
    def _site(cls, value: str) -> str:
        if value not in SITES:
            raise ValueError(f"unknown site {value!r}; use one of {', '.join(SITES)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> StackConfig:
        site = SITES[self.site]
        problems = []
        for i, group in enumerate(self.node_groups):
            if site.bare_metal and not group.node_type:
                problems.append(f"node_groups[{i}] ({group.role}): {self.site} is bare metal; set node_type")
            if not site.bare_metal and not group.flavor:
                problems.append(f"node_groups[{i}] ({group.role}): {self.site} is KVM; set flavor")
            if group.role == "gpu" and not (group.node_type or "").startswith("gpu_"):
                problems.append(f"node_groups[{i}]: a gpu group needs a gpu_* node_type on a bare-metal site")
        if [g.role for g in self.node_groups].count("control") != 1:
            problems.append("node_groups: exactly one group must have role 'control' (it runs the Kubernetes server)")
        elif next(g for g in self.node_groups if g.role == "control").count != 1:
            problems.append("node_groups: the control group must have count 1")
        roles = {g.role for g in self.node_groups}
        problems += [f"volumes: {v.name} is attached to role {v.role!r}, which no node group has" for v in self.volumes if v.role not in roles]
        if self.environment != "dev":
            for key in ("ssh_cidrs", "api_cidrs"):
                if any(ipaddress.ip_network(c).prefixlen == 0 for c in getattr(self.access, key)):
                    problems.append(f"access.{key}: {self.environment} must not open it to the whole internet (0.0.0.0/0)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

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
    def protect_data(self) -> bool:
        """Volumes in prod cannot be deleted by `pulumi destroy` or a replacement."""
        return self.environment == "prod"


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
