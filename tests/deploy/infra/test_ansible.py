"""The bootstrap playbooks: syntax, ansible-lint, the roles that can run on this machine, and the Pulumi resource that runs them."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import ansible_runner
import jsonschema
import pytest
import yaml

from infra.bootstrap import ANSIBLE_DIR, PLAYBOOK, RUNNER_PATH, BootstrapError, BootstrapProvider, fingerprint, playbook_digest
from infra.config import BootstrapConfig
from mlops.gitops.charts import MissingArtifact, find_artifact
from mlops.gitops.render import load_all

BIN = Path(sys.executable).parent
LOCAL = f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"


def run_role(tmp_path: Path, role: str, extravars: dict, tags: str | None = None, envvars: dict | None = None,
             tasks_from: str | None = None, expect: str = "successful"):
    """Run one role against this machine through ansible-runner, as the bootstrap does against the nodes."""
    step = {"name": f"Run {role}", "hosts": "localhost", "gather_facts": False}
    if tasks_from:
        step["tasks"] = [{"name": "Include", "ansible.builtin.include_role": {"name": role, "tasks_from": tasks_from}}]
    else:
        step["roles"] = [role]
    playbook = tmp_path / f"{role}.yml"
    playbook.write_text(yaml.safe_dump([step]))
    # A private data dir per run: ansible-runner keeps what a run was given in it.
    runner = ansible_runner.run(private_data_dir=tempfile.mkdtemp(dir=tmp_path), playbook=str(playbook), inventory=LOCAL,
                                extravars=extravars, roles_path=str(ANSIBLE_DIR / "roles"), tags=tags, quiet=True,
                                envvars={"PATH": RUNNER_PATH, **(envvars or {})})
    assert runner.status == expect, runner.stdout.read()[-3000:]
    return runner


def changed(runner) -> int:
    return runner.stats["changed"].get("localhost", 0)


def test_site_playbook_syntax():
    result = subprocess.run([BIN / "ansible-playbook", "--syntax-check", "-i", "localhost,", str(PLAYBOOK)],
                            capture_output=True, text=True, cwd=ANSIBLE_DIR, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_is_clean_at_the_production_profile():
    result = subprocess.run([BIN / "ansible-lint", "--nocolor", "--profile", "production", str(ANSIBLE_DIR)],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 failure(s), 0 warning(s)" in result.stderr + result.stdout


def test_nothing_connects_before_every_node_answers_ssh():
    """Nova says ACTIVE before sshd answers (bare metal reboots after deploy): the first play only waits, ~20 min."""
    first, *rest = yaml.safe_load(PLAYBOOK.read_text())
    assert first["hosts"] == "all" and first["gather_facts"] is False and "roles" not in first
    (wait,) = first["tasks"]
    assert "ansible.builtin.wait_for_connection" in wait
    assert first["vars"]["bootstrap_connect_timeout_s"] >= 1200 and wait["ansible.builtin.wait_for_connection"]["timeout"] == \
        "{{ bootstrap_connect_timeout_s }}"
    assert [p["roles"] for p in rest][:2] == [["common", "firewall"], ["volumes"]]  # the firewall opens before k3s starts


@pytest.mark.skipif(os.geteuid() != 0, reason="formatting and mounting a loop device needs root")
def test_volumes_role_formats_once_mounts_and_never_wipes(tmp_path: Path):
    image = tmp_path / "volume.img"
    subprocess.run(["truncate", "-s", "64M", str(image)], check=True)
    device = subprocess.run(["losetup", "--find", "--show", str(image)], check=True, capture_output=True, text=True).stdout.strip()
    root, fstab = tmp_path / "srv", tmp_path / "fstab"
    extravars = {"volumes_list": [{"name": "postgresql", "device": device, "fstype": "ext4"}], "volumes_root": str(root),
                 "volumes_fstab": str(fstab), "volumes_manifests_dir": str(tmp_path / "manifests")}
    mountpoint = root / "postgresql"
    try:
        first = run_role(tmp_path, "volumes", extravars)
        assert changed(first) == 4  # formatted, mounted, the manifests folder and the StorageClass manifest
        assert subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(mountpoint)], capture_output=True, text=True).stdout.strip() == device
        assert f"{device} {mountpoint} ext4 defaults,nofail 0 0" in fstab.read_text()
        (mountpoint / "db.sqlite").write_text("precious")

        again = run_role(tmp_path, "volumes", extravars)  # a re-run (or a rebuilt node) changes nothing
        assert changed(again) == 0
        assert (mountpoint / "db.sqlite").read_text() == "precious"

        subprocess.run(["mount", "-o", "remount,ro", str(mountpoint)], check=True)  # as a read-only share would be
        refused = run_role(tmp_path, "volumes", extravars, expect="failed")
        assert f"{mountpoint} ({device}) is not writable by root" in refused.stdout.read()
    finally:
        subprocess.run(["umount", str(mountpoint)], capture_output=True)
        subprocess.run(["losetup", "-d", device], capture_output=True)


# k3s's registries.yaml, as documented (docs.k3s.io/installation/private-registry, "Registries Configuration
# File" and its Configs tables) and read by rancher/wharfie pkg/registries (Registry{Mirrors, Configs}).
REGISTRIES_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "mirrors": {"type": "object"},
        "configs": {"type": "object", "additionalProperties": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "auth": {"type": "object", "additionalProperties": False,
                         "properties": {k: {"type": "string"} for k in ("username", "password", "auth", "identity_token")}},
                "tls": {"type": "object", "additionalProperties": False,
                        "properties": {"ca_file": {"type": "string"}, "cert_file": {"type": "string"},
                                       "key_file": {"type": "string"}, "insecure_skip_verify": {"type": "boolean"}}},
            }}},
    },
}


def test_k3s_configuration_and_registry_credentials_render(tmp_path: Path):
    config_dir = tmp_path / "k3s"
    auth = {"ghcr.io": {"auth": {"username": "qa-bot", "password": "ghp_t0ken: with 'quotes'"}}}
    run_role(tmp_path, "k3s_server", {"k3s_common_config_dir": str(config_dir), "k3s_server_public_ip": "129.114.108.10",
                                      "k3s_server_private_ip": "10.52.0.5", "k3s_common_registries_configs": auth}, tags="config")
    config = yaml.safe_load((config_dir / "config.yaml").read_text())
    assert config["tls-san"] == ["10.52.0.5", "129.114.108.10"] and config["node-ip"] == "10.52.0.5"
    assert config["resolv-conf"] == f"{config_dir}/resolv.conf"
    assert (config_dir / "resolv.conf").read_text().splitlines()[1:] == ["nameserver 8.8.8.8", "nameserver 1.1.1.1"]
    assert oct((config_dir / "config.yaml").stat().st_mode & 0o777) == "0o600"
    registries = yaml.safe_load((config_dir / "registries.yaml").read_text())
    jsonschema.validate(registries, REGISTRIES_SCHEMA)
    assert registries == {"configs": auth} and oct((config_dir / "registries.yaml").stat().st_mode & 0o777) == "0o600"

    run_role(tmp_path, "k3s_server", {"k3s_common_config_dir": str(config_dir), "k3s_server_private_ip": "10.52.0.5"}, tags="config")
    assert not (config_dir / "registries.yaml").exists()  # credentials removed from the stack: removed from the node


def test_the_agent_writes_the_same_shared_files(tmp_path: Path):
    config_dir = tmp_path / "k3s"
    hostvars = {"k3s_server_url": "https://10.52.0.5:6443", "k3s_server_join_token": "K10::server:abc"}
    inventory = f"[control]\nserver ansible_connection=local\n[worker]\n{LOCAL}"
    playbook = tmp_path / "agent.yml"
    playbook.write_text(yaml.safe_dump([
        {"name": "Server facts", "hosts": "control", "gather_facts": False,
         "tasks": [{"name": "Facts", "ansible.builtin.set_fact": hostvars, "tags": ["config"]}]},
        {"name": "Agent", "hosts": "worker", "gather_facts": False, "roles": ["k3s_agent"]}]))
    auth = {"ghcr.io": {"auth": {"username": "qa-bot", "password": "p"}}}
    runner = ansible_runner.run(private_data_dir=tempfile.mkdtemp(dir=tmp_path), playbook=str(playbook), inventory=inventory, quiet=True,
                                extravars={"k3s_common_config_dir": str(config_dir), "k3s_common_registries_configs": auth},
                                roles_path=str(ANSIBLE_DIR / "roles"), tags="config", envvars={"PATH": RUNNER_PATH})
    assert runner.status == "successful", runner.stdout.read()[-3000:]
    config = yaml.safe_load((config_dir / "config.yaml").read_text())
    assert config == {"server": "https://10.52.0.5:6443", "token": "K10::server:abc", "resolv-conf": f"{config_dir}/resolv.conf",
                      "node-label": ["transformers-qa/role=worker"]}
    assert yaml.safe_load((config_dir / "registries.yaml").read_text()) == {"configs": auth}


FAKE_INSTALLER = """#!/bin/sh
# Stands for get.k3s.io: installs "k3s" at INSTALL_K3S_VERSION into INSTALL_K3S_BIN_DIR and logs the call.
echo "$INSTALL_K3S_VERSION $INSTALL_K3S_EXEC" >> "$(dirname "$0")/installs.log"
printf '#!/bin/sh\\necho "k3s version %s (0123abcd)"\\necho "go version go1.22.9"\\n' "$INSTALL_K3S_VERSION" > "$INSTALL_K3S_BIN_DIR/k3s"
chmod +x "$INSTALL_K3S_BIN_DIR/k3s"
"""


def test_k3s_installs_upgrades_and_restarts_only_when_it_must(tmp_path: Path):
    """A version bump in config upgrades the node; the same version changes nothing (no `creates:` shortcut)."""
    (tmp_path / "bin").mkdir()
    installer = tmp_path / "install.sh"
    installer.write_text(FAKE_INSTALLER)
    installer.chmod(0o755)
    log = tmp_path / "installs.log"
    base = {"k3s_common_bin": str(tmp_path / "bin" / "k3s"), "k3s_common_install_url": f"file://{installer}",
            "k3s_common_exec": "server", "k3s_common_service": "k3s", "k3s_common_restart": False}

    def install(version: str):
        return run_role(tmp_path, "k3s_common", {**base, "k3s_common_version": version}, tasks_from="install")

    assert changed(install("v1.31.4+k3s1")) == 1
    assert changed(install("v1.31.4+k3s1")) == 0
    assert changed(install("v1.32.1+k3s1")) == 1
    assert log.read_text().splitlines() == ["v1.31.4+k3s1 server", "v1.32.1+k3s1 server"]
    assert subprocess.run([tmp_path / "bin" / "k3s", "--version"], capture_output=True, text=True).stdout.startswith(
        "k3s version v1.32.1+k3s1 ")


FIREWALL_VARS = {"firewall_ssh_cidrs": ["198.51.100.0/24", "2001:db8::/32"], "firewall_api_cidrs": ["198.51.100.0/24"],
                 "firewall_node_addresses": ["10.52.0.10", "10.52.0.11"]}


def read_zones(folder: Path) -> dict:
    """The zone files as firewalld itself reads them (its zone_reader validates addresses and rich rules)."""
    code = textwrap.dedent("""
        import json, sys
        from firewall.core.io.zone import zone_reader
        zones = {name: zone_reader(f"{name}.xml", sys.argv[1]) for name in ("public", "trusted")}
        print(json.dumps({name: {"target": z.target, "services": z.services, "ports": z.ports, "sources": z.sources,
                                 "rules": [str(r) for r in z.rules]} for name, z in zones.items()}))
    """)
    result = subprocess.run(["/usr/bin/python3", "-c", code, str(folder)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return yaml.safe_load(result.stdout)


@pytest.mark.skipif(subprocess.run(["/usr/bin/python3", "-c", "import firewall.core.io.zone"], capture_output=True).returncode != 0,
                    reason="firewalld's Python package (Debian python3-firewall) is not installed: apt-get install python3-firewall")
def test_firewall_zones_open_what_the_cluster_needs_and_nothing_else(tmp_path: Path):
    run_role(tmp_path, "firewall", {**FIREWALL_VARS, "firewall_zones_dir": str(tmp_path)}, tags="config")
    zones = read_zones(tmp_path)
    public, trusted = zones["public"], zones["trusted"]
    # From anywhere: the ingress and cert-manager's HTTP-01 challenge; nothing else is open to all.
    assert public["services"] == ["http", "https"] and public["ports"] == [] and public["sources"] == []
    assert public["rules"] == [
        'rule family="ipv4" source address="198.51.100.0/24" service name="ssh" accept',
        'rule family="ipv6" source address="2001:db8::/32" service name="ssh" accept',
        'rule family="ipv4" source address="198.51.100.0/24" port port="6443" protocol="tcp" accept',
    ]
    # k3s (docs.k3s.io/installation/requirements, Firewalld): the nodes (6443, 8472/udp, 10250), pods and services.
    assert trusted["target"] == "ACCEPT"
    assert trusted["sources"] == ["10.52.0.10", "10.52.0.11", "10.42.0.0/16", "10.43.0.0/16"]


def test_the_firewall_will_not_shut_out_the_bootstrap(tmp_path: Path):
    outside = {"SSH_CONNECTION": "203.0.113.7 50022 10.52.0.10 22"}
    refused = run_role(tmp_path, "firewall", FIREWALL_VARS, tags="preflight", envvars=outside, expect="failed")
    assert "reaches localhost from 203.0.113.7, which is not in access.ssh_cidrs (198.51.100.0/24, 2001:db8::/32)" in \
        refused.stdout.read()
    run_role(tmp_path, "firewall", FIREWALL_VARS, tags="preflight", envvars={"SSH_CONNECTION": "198.51.100.20 50022 10.52.0.10 22"})
    run_role(tmp_path, "firewall", FIREWALL_VARS, tags="preflight", envvars={"SSH_CONNECTION": "10.52.0.10 50022 10.52.0.11 22"})


def test_argocd_configuration_renders(tmp_path: Path):
    run_role(tmp_path, "argocd", {"argocd_manifest_dir": str(tmp_path / "argocd"), "argocd_environment": "staging",
                                  "argocd_repo_url": "https://github.com/acme/qa.git", "argocd_revision": "v1.2.0",
                                  "argocd_public_host": "129.114.108.10.nip.io"}, tags="config")
    ingress = yaml.safe_load((tmp_path / "argocd" / "argocd-ingress.yaml").read_text())
    assert ingress["spec"]["rules"][0]["host"] == "argocd.129.114.108.10.nip.io"
    app = yaml.safe_load((tmp_path / "argocd" / "root-staging.yaml").read_text())
    assert app["kind"] == "Application" and app["metadata"]["name"] == "root-staging"
    assert app["spec"]["source"] == {
        "repoURL": "https://github.com/acme/qa.git", "targetRevision": "v1.2.0", "path": "gitops/apps",
        "helm": {"releaseName": "root-staging", "valueFiles": ["../envs/staging/apps.yaml"],
                 "parameters": [{"name": "domain", "value": "129.114.108.10.nip.io"},
                                {"name": "repoURL", "value": "https://github.com/acme/qa.git"},
                                {"name": "targetRevision", "value": "v1.2.0"}]}}
    assert ingress["spec"]["tls"] == [{"secretName": "argocd-ingress-tls", "hosts": ["argocd.129.114.108.10.nip.io"]}]
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}


def test_the_bootstrap_steps_hold_for_the_pinned_argocd():
    """Every name the argocd role relies on exists in the pinned release's own install.yaml (from the chart
    cache, model/mlops/gitops/charts.py), and its checksum is pinned."""
    try:
        install = find_artifact("argo-cd", BootstrapConfig().argocd_version) / "manifests" / "install.yaml"
    except MissingArtifact as e:
        pytest.skip(str(e))
    docs = load_all(install.read_text())
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    assert ("StatefulSet", "argocd-application-controller") in by_name  # the role waits for its readyReplicas
    assert ("ConfigMap", "argocd-cm") in by_name and ("ConfigMap", "argocd-cmd-params-cm") in by_name  # the role patches both
    server = by_name[("Deployment", "argocd-server")]["spec"]["template"]["spec"]["containers"][0]
    insecure = [e for e in server["env"] if e["name"] == "ARGOCD_SERVER_INSECURE"]
    assert insecure == [{"name": "ARGOCD_SERVER_INSECURE",
                         "valueFrom": {"configMapKeyRef": {"key": "server.insecure", "name": "argocd-cmd-params-cm", "optional": True}}}]
    assert {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080} in by_name[("Service", "argocd-server")]["spec"]["ports"]
    defaults = yaml.safe_load((ANSIBLE_DIR / "roles" / "argocd" / "defaults" / "main.yml").read_text())
    assert defaults["argocd_version"] == BootstrapConfig().argocd_version
    assert defaults["argocd_install_checksums"][defaults["argocd_version"]] == \
        "sha256:" + hashlib.sha256(install.read_bytes()).hexdigest()


FAKE_SITE = """
- name: Stand-in for site.yml
  hosts: control
  gather_facts: false
  tasks:
    - name: Fail on request
      ansible.builtin.fail:
        msg: "{{ fail_with }}"
      when: fail_with | default('') | length > 0
    - name: Record a host key as ssh would
      ansible.builtin.lineinfile:
        path: "{{ bootstrap_known_hosts }}"
        line: "129.114.108.10 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKey"
    - name: Write the kubeconfig k3s would write
      ansible.builtin.copy:
        dest: "{{ k3s_server_kubeconfig_dest }}"
        content: "apiVersion: v1\\nclusters:\\n- cluster:\\n    server: https://127.0.0.1:6443\\n  name: default\\n"
        mode: "0600"
"""


def test_bootstrap_resource_runs_the_playbook_and_returns_the_kubeconfig(tmp_path: Path):
    playbook = tmp_path / "site.yml"
    playbook.write_text(textwrap.dedent(FAKE_SITE))
    (tmp_path / "roles").mkdir()
    inventory = yaml.safe_dump({"all": {"children": {"control": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}}})
    props = {"inventory": inventory, "floating_ip": "129.114.108.10", "extravars": {}, "playbook": str(playbook),
             "fingerprint": "f1", "kubeconfig": None, "known_hosts": None}
    result = BootstrapProvider().create(props)
    assert result.id == "f1" and "server: https://129.114.108.10:6443" in result.outs["kubeconfig"]
    assert result.outs["known_hosts"] == "129.114.108.10 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKey\n"

    with pytest.raises(BootstrapError, match=r"task 'Fail on request' failed on localhost: disk full on /srv"):
        BootstrapProvider().create({**props, "extravars": {"fail_with": "disk full on /srv"}})


def test_recorded_host_keys_are_kept_for_the_same_instances_only(monkeypatch):
    seen: list[str] = []
    monkeypatch.setattr("infra.bootstrap.run_playbook", lambda props, known="": seen.append(known) or props)
    olds = {"inventory": "all: {instance_id: a}", "fingerprint": "1", "known_hosts": "fip ssh-ed25519 KEY\n"}
    BootstrapProvider().update("x", olds, {**olds, "fingerprint": "2"})
    BootstrapProvider().update("x", olds, {**olds, "inventory": "all: {instance_id: b}", "fingerprint": "3"})
    assert seen == ["fip ssh-ed25519 KEY\n", ""]


def test_bootstrap_reruns_only_when_its_inputs_or_playbooks_change(tmp_path: Path):
    base = fingerprint("[control]\nhost", "1.2.3.4", {"k3s_server_version": "v1"}, playbook_digest())
    assert base == fingerprint("[control]\nhost", "1.2.3.4", {"k3s_server_version": "v1"}, playbook_digest())
    assert base != fingerprint("[control]\nhost", "1.2.3.4", {"k3s_server_version": "v2"}, playbook_digest())
    provider = BootstrapProvider()
    assert provider.diff("x", {"fingerprint": base}, {"fingerprint": base}).changes is False
    assert provider.diff("x", {"fingerprint": base}, {"fingerprint": "other"}).changes is True
    copy = tmp_path / "ansible"
    subprocess.run(["cp", "-r", str(ANSIBLE_DIR), str(copy)], check=True)
    assert playbook_digest(copy) == playbook_digest()
    (copy / "roles" / "k3s_server" / "defaults" / "main.yml").write_text("k3s_server_version: v9.9.9+k3s1\n")
    assert playbook_digest(copy) != playbook_digest()
