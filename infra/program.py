"""The whole environment for one stack: the lease, then the cluster placed in it; what the stack exports."""

from __future__ import annotations

from urllib.parse import quote

import pulumi
import pulumi_openstack as openstack
import yaml

from infra.bootstrap import Bootstrap
from infra.cluster import Cluster, node_reservation
from infra.config import PROJECT, StackConfig
from infra.lease import Lease, reservation_key
from infra.sites import SITES, Site

ENVIRONMENTS = ("dev", "staging", "prod")
# Pulumi secret config -> the environments that need it (docs/deployment.md, Secrets); each is required there.
SECRET_CONFIG: dict[str, tuple[str, ...]] = {
    "minio_password": ENVIRONMENTS,
    "db_password": ENVIRONMENTS,
    "db_admin_password": ENVIRONMENTS,
    "grafana_password": ENVIRONMENTS,
    "model_store_publisher_password": ("dev", "prod"),
    "mlflow_admin_password": ("staging",),
    "mlflow_flask_secret_key": ("staging",),
    "gitops_deploy_key": ("staging",),
}
# Public host names under <domain> (docs/deployment.md, One environment's public names), by stack output.
PUBLIC_HOSTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "argocd_url": ("argocd", ENVIRONMENTS),
    "qa_url": ("qa", ENVIRONMENTS),
    "grafana_url": ("grafana", ENVIRONMENTS),
    "argo_url": ("argo", ("staging",)),
    "mlflow_url": ("mlflow", ("staging",)),
    "model_store_url": ("minio", ("dev", "prod")),
}
LOGIN_USER = "cc"  # Chameleon images
# The bootstrap records host keys on first contact and checks them on every later connection; the ProxyCommand
# carries the same options, since options given to the outer ssh never reach the jump host's connection.
HOST_KEY_OPTIONS = "-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={{ bootstrap_known_hosts }}"
# GitHub's published SSH host key: the release workflow pushes its promotion commit over SSH.
GITHUB_KNOWN_HOSTS = "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
FEEDBACK_DATABASE = "postgresql+psycopg://qa:{password}@postgresql.mlflow.svc.cluster.local:5432/feedback"
REGISTRY = "ghcr.io"


class SecretConfigError(Exception):
    """Secret config the stack needs is missing or half set."""


# Passwords that end up inside URLs and inside the MLflow chart's `sed` substitution of its auth config, where
# `/`, `&`, `@` or `:` (all of base64's and more) break them: letters and digits only (`openssl rand -hex 24`).
PLAIN_PASSWORDS = ("db_password", "db_admin_password", "minio_password", "grafana_password",
                   "model_store_publisher_password", "mlflow_admin_password", "mlflow_flask_secret_key")
NEW_PASSWORD = '"$(openssl rand -hex 24)"'
MIN_PASSWORD = 12  # MLflow's basic auth refuses shorter passwords


def required_secrets(environment: str) -> list[str]:
    return [name for name, environments in SECRET_CONFIG.items() if environment in environments]


def stack_secrets(raw: pulumi.Config, config: StackConfig) -> dict[str, pulumi.Output[str]]:
    """The stack's secret config (`pulumi config set --secret`, never in git): all that its environment needs, and the
    registry password when a registry user is set; SecretConfigError names every one missing."""
    needed = required_secrets(config.environment)
    missing = [name for name in needed if raw.get(name) is None]
    if missing:
        raise SecretConfigError(
            f"{config.environment} needs secret config {', '.join(f'{PROJECT}:{m}' for m in missing)}; set each with "
            f"`pulumi config set --secret {PROJECT}:NAME {NEW_PASSWORD}` (gitops_deploy_key: "
            f"`pulumi config set --secret {PROJECT}:gitops_deploy_key < deploy_key`, the private half of a GitHub deploy "
            "key with write access)")
    unsafe = [name for name in needed if name in PLAIN_PASSWORDS
              and not (str(raw.get(name)).isalnum() and len(str(raw.get(name))) >= MIN_PASSWORD)]
    if unsafe:
        raise SecretConfigError(
            f"{', '.join(f'{PROJECT}:{u}' for u in unsafe)} must be at least {MIN_PASSWORD} letters and digits (they go "
            f"into URLs and the MLflow chart's sed, and MLflow refuses shorter ones): set each again with "
            f"`pulumi config set --secret {PROJECT}:NAME {NEW_PASSWORD}`")
    if (config.registry_username is None) != (raw.get("registry_password") is None):
        raise SecretConfigError(
            f"private images need both {PROJECT}:registry_username and {PROJECT}:registry_password (a GitHub token with "
            f"read:packages), or neither for public images: `pulumi config set --secret {PROJECT}:registry_password ...`")
    if config.registry_username is not None:
        needed.append("registry_password")
    return {name: raw.require_secret(name) for name in needed}


def openstack_provider(site: Site, credential_id: str, credential_secret: str) -> openstack.Provider:
    """The OpenStack provider of the stack's own site: its Keystone and region, whatever openrc is sourced."""
    return openstack.Provider("openstack", auth_url=site.auth_url, region=site.name, application_credential_id=credential_id,
                              application_credential_secret=pulumi.Output.secret(credential_secret))


def reservations(config: StackConfig, public_network_id: pulumi.Output[str], provider: openstack.Provider) -> list[dict]:
    """One reservation per node type (bare metal) or flavor (KVM) with the summed count of its groups; on bare metal,
    the control node's floating IP and (with volumes) the storage network the shares are mounted over."""
    wanted: dict[str, dict] = {}
    for group in config.node_groups:
        reservation = node_reservation(group)
        key = reservation_key(reservation)
        if key in wanted:
            wanted[key]["count"] += group.count
        elif reservation["kind"] == "flavor":
            flavor_id = openstack.compute.get_flavor_output(name=group.flavor, opts=pulumi.InvokeOutputOptions(provider=provider)).id
            wanted[key] = {**reservation, "count": group.count, "flavor_id": flavor_id}
        else:
            wanted[key] = {**reservation, "count": group.count}
    if SITES[config.site].bare_metal:
        wanted["floatingip"] = {"kind": "floatingip", "count": 1, "network_id": public_network_id}
    if config.storage_network:
        wanted["network"] = {"kind": "network", "count": 1, "network_name": config.storage_network_name}
    return list(wanted.values())


def inventory(cluster: Cluster, floating_ip: pulumi.Output[str]) -> pulumi.Output[str]:
    """An Ansible inventory (YAML): the control node through its floating IP, the others through it as a jump host.

    Each host carries its instance id, so replaced nodes make a new inventory (and new recorded host keys).
    """
    nodes = [(role, n, node) for role, group in cluster.instances.items() for n, node in enumerate(group)]

    def render(args: list) -> str:
        fip, *values = args
        groups: dict = {}
        for (role, n, _), address, instance_id in zip(nodes, values[0::2], values[1::2], strict=True):
            host = {"ansible_host": fip if role == "control" else address, "private_ip": address, "instance_id": instance_id}
            if role != "control":
                host["ansible_ssh_common_args"] = (f'{HOST_KEY_OPTIONS} -o ProxyCommand="ssh -W %h:%p {HOST_KEY_OPTIONS} '
                                                   f'-o ConnectTimeout=30 {LOGIN_USER}@{fip}"')
            groups.setdefault(role, {"hosts": {}})["hosts"][f"{role}-{n}"] = host
        variables = {"ansible_user": LOGIN_USER, "ansible_ssh_common_args": HOST_KEY_OPTIONS,
                     "bootstrap_known_hosts": "~/.ssh/known_hosts"}  # the bootstrap passes its own file
        return yaml.safe_dump({"all": {"vars": variables, "children": groups}}, sort_keys=False)

    return pulumi.Output.all(floating_ip, *[v for _, _, node in nodes for v in (node.access_ip_v4, node.id)]).apply(render)


def public_host(floating_ip: str, domain: str | None = None) -> str:
    """The environment's domain: the stack's own `domain` when set, else a name for the floating IP without owning
    one (nip.io resolves a.b.c.d.nip.io to a.b.c.d). nip.io is not on the Public Suffix List, so all its users share
    one Let's Encrypt rate limit; a domain of your own has its own."""
    return domain or f"{floating_ip}.nip.io"


def public_urls(environment: str, domain: pulumi.Output[str]) -> dict[str, pulumi.Output[str]]:
    return {output: domain.apply(lambda d, host=host: f"https://{host}.{d}")
            for output, (host, environments) in PUBLIC_HOSTS.items() if environment in environments}


def cluster_secrets(environment: str, secrets: dict[str, str]) -> list[dict]:
    """The Kubernetes Secrets the bootstrap creates (namespace, name, data); git only references them.
    Names and keys: docs/deployment.md, Secrets; key names as the charts in gitops/platform/ read them."""
    minio_user, minio_password = "minio", secrets["minio_password"]
    made = [
        {"namespace": "mlflow", "name": "minio", "data": {"rootUser": minio_user, "rootPassword": minio_password}},
        {"namespace": "mlflow", "name": "postgres",
         "data": {"username": "qa", "password": secrets["db_password"], "postgres-password": secrets["db_admin_password"]}},
        {"namespace": "transformers-qa", "name": "minio", "data": {"root-user": minio_user, "root-password": minio_password}},
        {"namespace": "transformers-qa", "name": "postgres",
         "data": {"url": FEEDBACK_DATABASE.format(password=quote(secrets["db_password"], safe=""))}},
        {"namespace": "monitoring", "name": "grafana-admin",
         "data": {"admin-user": "admin", "admin-password": secrets["grafana_password"]}},
    ]
    if environment in ("dev", "prod"):
        made.append({"namespace": "mlflow", "name": "minio-publisher",
                     "data": {"secretKey": secrets["model_store_publisher_password"]}})
    if environment == "staging":
        made += [
            {"namespace": "mlflow", "name": "mlflow-auth", "data": {"username": "admin", "password": secrets["mlflow_admin_password"]}},
            {"namespace": "mlflow", "name": "mlflow-flask", "data": {"MLFLOW_FLASK_SERVER_SECRET_KEY": secrets["mlflow_flask_secret_key"]}},
            {"namespace": "argo", "name": "mlops-pipeline-s3",
             "data": {"AWS_ACCESS_KEY_ID": minio_user, "AWS_SECRET_ACCESS_KEY": minio_password}},
            {"namespace": "argo", "name": "mlops-pipeline-mlflow",
             "data": {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": secrets["mlflow_admin_password"]}},
            {"namespace": "argo", "name": "mlops-pipeline-feedback",  # the release's data step trains on it
             "data": {"url": FEEDBACK_DATABASE.format(password=quote(secrets["db_password"], safe=""))}},
            {"namespace": "argo", "name": "gitops-deploy-key",
             "data": {"ssh-privatekey": secrets["gitops_deploy_key"], "known_hosts": GITHUB_KNOWN_HOSTS}},
        ]
    return made


def registry_auth(config: StackConfig, password: str | None) -> dict:
    """k3s's registries.yaml `configs` for the image registry, when pull credentials are configured."""
    if config.registry_username is None:
        return {}
    return {REGISTRY: {"auth": {"username": config.registry_username, "password": password}}}


def bootstrap_vars(config: StackConfig, cluster: Cluster, secrets: dict[str, pulumi.Input[str]]) -> pulumi.Output[dict]:
    """What the playbooks need (infra/ansible/roles/*/defaults name them); secrets stay Pulumi secrets."""
    mounts = pulumi.Output.all(**cluster.mounts) if cluster.mounts else {}
    return pulumi.Output.all(fip=cluster.floating_ip, mounts=mounts, secrets=pulumi.Output.all(**secrets)).apply(
        lambda a: {
            "firewall_ssh_cidrs": config.access.ssh_cidrs,
            "firewall_api_cidrs": config.access.api_cidrs,
            "k3s_common_registries_configs": registry_auth(config, a["secrets"].get("registry_password")),
            "k3s_server_version": config.bootstrap.k3s_version,
            "k3s_agent_version": config.bootstrap.k3s_version,
            "k3s_server_public_ip": a["fip"],
            "volumes_list": [{"name": name, **mount} for name, mount in a["mounts"].items()],
            "argocd_version": config.bootstrap.argocd_version,
            "argocd_environment": config.environment,
            "argocd_repo_url": config.bootstrap.repo_url,
            "argocd_public_host": public_host(a["fip"], config.domain),
            "argocd_revision": config.bootstrap.revision,
            "argocd_secrets": cluster_secrets(config.environment, a["secrets"]),
        })


def build(config: StackConfig, public_key: str, secrets: dict[str, pulumi.Input[str]],
          provider: openstack.Provider) -> dict[str, pulumi.Output]:
    site = SITES[config.site]
    public_network = openstack.networking.get_network_output(name=site.public_network, opts=pulumi.InvokeOutputOptions(provider=provider))
    lease = Lease("lease", site=config.site, lease_name=f"{PROJECT}-{config.environment}", hours=config.lease.hours,
                  prolong_hours=config.lease.prolong_hours, reservations=reservations(config, public_network.id, provider))
    cluster = Cluster(config.environment, config, lease, public_key, opts=pulumi.ResourceOptions(providers=[provider]))
    waits_for = [cluster.floating_ip_association, *cluster.storage, *[n for nodes in cluster.instances.values() for n in nodes]]
    bootstrap = Bootstrap("bootstrap", inventory=inventory(cluster, cluster.floating_ip), floating_ip=cluster.floating_ip,
                          extravars=bootstrap_vars(config, cluster, secrets), opts=pulumi.ResourceOptions(depends_on=waits_for))
    domain = cluster.floating_ip.apply(lambda ip: public_host(ip, config.domain))
    return {
        "lease_id": lease.lease_id,
        "lease_name": lease.lease_name,
        "lease_end": lease.end_date,
        "floating_ip": cluster.floating_ip,
        "domain": domain,
        **public_urls(config.environment, domain),
        "ssh": cluster.floating_ip.apply(lambda ip: f"ssh {LOGIN_USER}@{ip}"),
        "ansible_inventory": inventory(cluster, cluster.floating_ip),
        "kubeconfig": pulumi.Output.secret(bootstrap.kubeconfig),
    }
