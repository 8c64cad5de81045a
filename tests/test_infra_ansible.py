"""The bootstrap playbooks: syntax, ansible-lint, the roles that can run on this machine, and the Pulumi resource that runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import ansible_runner
import pytest
import yaml

from infra.bootstrap import ANSIBLE_DIR, PLAYBOOK, RUNNER_PATH, BootstrapError, BootstrapProvider, fingerprint, playbook_digest

BIN = Path(sys.executable).parent
LOCAL = f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"


def run_role(tmp_path: Path, role: str, extravars: dict, tags: str | None = None):
    """Run one role against this machine through ansible-runner, as the bootstrap does against the nodes."""
    playbook = tmp_path / f"{role}.yml"
    playbook.write_text(yaml.safe_dump([{"name": f"Run {role}", "hosts": "localhost", "gather_facts": False, "roles": [role]}]))
    (tmp_path / "runner").mkdir(exist_ok=True)
    runner = ansible_runner.run(private_data_dir=str(tmp_path / "runner"), playbook=str(playbook), inventory=LOCAL,
                                extravars=extravars, roles_path=str(ANSIBLE_DIR / "roles"), tags=tags, quiet=True,
                                envvars={"PATH": RUNNER_PATH})
    assert runner.status == "successful", runner.stdout.read()[-3000:]
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


@pytest.mark.skipif(os.geteuid() != 0, reason="formatting and mounting a loop device needs root")
def test_volumes_role_formats_once_mounts_and_never_wipes(tmp_path: Path):
    image = tmp_path / "volume.img"
    subprocess.run(["truncate", "-s", "64M", str(image)], check=True)
    device = subprocess.run(["losetup", "--find", "--show", str(image)], check=True, capture_output=True, text=True).stdout.strip()
    root, fstab = tmp_path / "srv", tmp_path / "fstab"
    extravars = {"volumes_list": [{"name": "mlflow-db", "device": device, "fstype": "ext4"}], "volumes_root": str(root), "volumes_fstab": str(fstab)}
    mountpoint = root / "mlflow-db"
    try:
        first = run_role(tmp_path, "volumes", extravars)
        assert changed(first) == 2  # formatted and mounted
        assert subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(mountpoint)], capture_output=True, text=True).stdout.strip() == device
        assert f"{device} {mountpoint} ext4 defaults,nofail 0 0" in fstab.read_text()
        (mountpoint / "db.sqlite").write_text("precious")

        again = run_role(tmp_path, "volumes", extravars)  # a re-run (or a rebuilt node) changes nothing
        assert changed(again) == 0
        assert (mountpoint / "db.sqlite").read_text() == "precious"
    finally:
        subprocess.run(["umount", str(mountpoint)], capture_output=True)
        subprocess.run(["losetup", "-d", device], capture_output=True)


def test_k3s_and_argocd_configuration_render(tmp_path: Path):
    run_role(tmp_path, "k3s_server", {"k3s_server_config_dir": str(tmp_path / "k3s"), "k3s_server_public_ip": "129.114.108.10",
                                      "k3s_server_private_ip": "10.52.0.5"}, tags="config")
    config = yaml.safe_load((tmp_path / "k3s" / "config.yaml").read_text())
    assert config["tls-san"] == ["10.52.0.5", "129.114.108.10"] and config["node-ip"] == "10.52.0.5"
    assert oct((tmp_path / "k3s" / "config.yaml").stat().st_mode & 0o777) == "0o600"

    run_role(tmp_path, "argocd", {"argocd_manifest_dir": str(tmp_path / "argocd"), "argocd_environment": "staging",
                                  "argocd_repo_url": "https://github.com/acme/qa.git", "argocd_revision": "v1.2.0",
                                  "argocd_public_host": "129.114.108.10.nip.io"}, tags="config")
    ingress = yaml.safe_load((tmp_path / "argocd" / "argocd-ingress.yaml").read_text())
    assert ingress["spec"]["rules"][0]["host"] == "argocd.129.114.108.10.nip.io"
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"] == {"name": "argocd-server", "port": {"name": "http"}}
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


FAKE_SITE = """
- name: Stand-in for site.yml
  hosts: control
  gather_facts: false
  tasks:
    - name: Fail on request
      ansible.builtin.fail:
        msg: "{{ fail_with }}"
      when: fail_with | default('') | length > 0
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
    props = {"inventory": "[control]\n" + LOCAL, "floating_ip": "129.114.108.10", "extravars": {}, "playbook": str(playbook),
             "fingerprint": "f1", "kubeconfig": None}
    result = BootstrapProvider().create(props)
    assert result.id == "f1" and "server: https://129.114.108.10:6443" in result.outs["kubeconfig"]

    with pytest.raises(BootstrapError, match=r"task 'Fail on request' failed on localhost: disk full on /srv"):
        BootstrapProvider().create({**props, "extravars": {"fail_with": "disk full on /srv"}})


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
