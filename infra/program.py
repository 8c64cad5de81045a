"""The whole environment for one stack: the lease, then the cluster placed in it; what the stack exports."""

from __future__ import annotations

from urllib.parse import quote

import pulumi
import pulumi_openstack as openstack

from infra.bootstrap import Bootstrap
from infra.cluster import Cluster
from infra.config import PROJECT, StackConfig
from infra.lease import Lease
from infra.sites import SITES


def reservations(config: StackConfig, public_network_id: pulumi.Output[str]) -> list[dict]:
    """One reservation per node group (hosts by node type, or a KVM flavor); on bare metal, the control node's
    floating IP and (with volumes) the storage network the shares are mounted over."""
    wanted: list[dict] = []
    for group in config.node_groups:
        if group.node_type:
            wanted.append({"kind": "host", "role": group.role, "count": group.count, "node_type": group.node_type})
        else:
            flavor_id = openstack.compute.get_flavor_output(name=group.flavor).id
            wanted.append({"kind": "flavor", "role": group.role, "count": group.count, "flavor_id": flavor_id})
    if SITES[config.site].bare_metal:
        wanted.append({"kind": "floatingip", "role": "control", "count": 1, "network_id": public_network_id})
    if config.storage_network:
        wanted.append({"kind": "network", "role": "storage", "count": 1, "network_name": config.storage_network_name})
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


def public_host(floating_ip: str) -> str:
    """A DNS name for the floating IP without owning a domain (nip.io resolves a.b.c.d.nip.io to a.b.c.d)."""
    return f"{floating_ip}.nip.io"


# GitHub's published SSH host key: the release workflow pushes its promotion commit over SSH.
GITHUB_KNOWN_HOSTS = "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
REQUIRED_SECRETS = ("db_password", "db_admin_password", "minio_password", "grafana_password")
FEEDBACK_DATABASE = "postgresql+psycopg://qa:{password}@postgresql.mlflow.svc.cluster.local:5432/feedback"


def cluster_secrets(secrets: dict[str, str]) -> list[dict]:
    """The Kubernetes Secrets the bootstrap creates (namespace, name, data); git only references them."""
    minio = {"root-user": "minio", "root-password": secrets["minio_password"]}  # our chart's init containers
    made = [
        # Key names as the MinIO, PostgreSQL (Bitnami) and MLflow charts read them (gitops/platform/).
        {"namespace": "mlflow", "name": "minio", "data": {"rootUser": minio["root-user"], "rootPassword": minio["root-password"]}},
        {"namespace": "mlflow", "name": "postgres",
         "data": {"username": "qa", "password": secrets["db_password"], "postgres-password": secrets["db_admin_password"]}},
        {"namespace": "transformers-qa", "name": "minio", "data": minio},
        {"namespace": "transformers-qa", "name": "postgres",
         "data": {"url": FEEDBACK_DATABASE.format(password=quote(secrets["db_password"], safe=""))}},
        {"namespace": "argo", "name": "mlops-pipeline-s3",
         "data": {"AWS_ACCESS_KEY_ID": minio["root-user"], "AWS_SECRET_ACCESS_KEY": minio["root-password"]}},
        {"namespace": "monitoring", "name": "grafana-admin",
         "data": {"admin-user": "admin", "admin-password": secrets["grafana_password"]}},
    ]
    if secrets.get("gitops_deploy_key"):
        made.append({"namespace": "argo", "name": "gitops-deploy-key",
                     "data": {"ssh-privatekey": secrets["gitops_deploy_key"], "known_hosts": GITHUB_KNOWN_HOSTS}})
    return made


def bootstrap_vars(config: StackConfig, cluster: Cluster, secrets: dict[str, pulumi.Input[str]]) -> pulumi.Output[dict]:
    """What the playbooks need (infra/ansible/roles/*/defaults name them); secrets stay Pulumi secrets."""
    mounts = pulumi.Output.all(**cluster.mounts) if cluster.mounts else {}
    return pulumi.Output.all(fip=cluster.floating_ip, mounts=mounts, secrets=pulumi.Output.all(**secrets)).apply(
        lambda a: {
            "k3s_server_version": config.bootstrap.k3s_version,
            "k3s_agent_version": config.bootstrap.k3s_version,
            "k3s_server_public_ip": a["fip"],
            "volumes_list": [{"name": name, **mount} for name, mount in a["mounts"].items()],
            "argocd_version": config.bootstrap.argocd_version,
            "argocd_environment": config.environment,
            "argocd_repo_url": config.bootstrap.repo_url,
            "argocd_public_host": public_host(a["fip"]),
            "argocd_revision": config.bootstrap.revision,
            "argocd_secrets": cluster_secrets(a["secrets"]),
        })


def build(config: StackConfig, public_key: str, secrets: dict[str, pulumi.Input[str]]) -> dict[str, pulumi.Output]:
    site = SITES[config.site]
    public_network = openstack.networking.get_network_output(name=site.public_network)
    lease = Lease("lease", site=config.site, lease_name=f"{PROJECT}-{config.environment}",
                  hours=config.lease.hours, reservations=reservations(config, public_network.id))
    cluster = Cluster(config.environment, config, lease, public_key)
    waits_for = [cluster.floating_ip_association, *cluster.storage, *[n for nodes in cluster.instances.values() for n in nodes]]
    bootstrap = Bootstrap("bootstrap", inventory=inventory(cluster, cluster.floating_ip), floating_ip=cluster.floating_ip,
                          extravars=bootstrap_vars(config, cluster, secrets), opts=pulumi.ResourceOptions(depends_on=waits_for))
    return {
        "lease_id": lease.lease_id,
        "lease_end": lease.end_date,
        "floating_ip": cluster.floating_ip,
        "ssh": cluster.floating_ip.apply(lambda ip: f"ssh cc@{ip}"),
        "ansible_inventory": inventory(cluster, cluster.floating_ip),
        "kubeconfig": pulumi.Output.secret(bootstrap.kubeconfig),
        "argocd_url": cluster.floating_ip.apply(lambda ip: f"https://argocd.{public_host(ip)}"),
    }
