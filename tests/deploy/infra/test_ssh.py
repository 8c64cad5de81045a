"""How the bootstrap reaches the nodes: the inventory as Ansible templates it, the ssh options as OpenSSH resolves them.

Options on the ssh command line do not reach a ProxyJump host's connection (ssh(1), ProxyJump: the jump
connection reads only the configuration files), so a new floating IP would prompt for its host key and hang
under ansible-runner. The ProxyCommand carries its own options; `ssh -G` (the real OpenSSH client) shows what
each connection would use.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support.infra import FLOATING_IP, run

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.skipif(shutil.which("ssh") is None, reason="the OpenSSH client (ssh) is not installed")


def ansible_var(inventory: Path, host: str, name: str, known_hosts: str) -> str:
    """A host variable as Ansible templates it for a connection (the debug action runs locally, connecting nowhere)."""
    result = subprocess.run([BIN / "ansible", "-i", str(inventory), host, "-m", "ansible.builtin.debug", "-a", f"var={name}",
                             "-e", f"bootstrap_known_hosts={known_hosts}", "-o"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return yaml.safe_load(result.stdout.split("=>", 1)[1])[name]


def resolved(args: list[str], destination: str) -> dict[str, str]:
    """`ssh -G`: the configuration OpenSSH would use for this connection, without connecting."""
    result = subprocess.run(["ssh", "-G", "-F", "/dev/null", *args, destination], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)


def test_the_jump_host_connection_checks_and_records_its_own_host_key(tmp_path: Path):
    mocks, outputs = run("prod")
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(outputs["ansible_inventory"])
    known_hosts = str(tmp_path / "known_hosts")
    hosts = yaml.safe_load(outputs["ansible_inventory"])["all"]["children"]
    assert set(hosts) == {"control", "worker", "gpu"} and hosts["control"]["hosts"]["control-0"]["ansible_host"] == FLOATING_IP
    worker = hosts["worker"]["hosts"]["worker-0"]

    outer = resolved(shlex.split(ansible_var(inventory, "worker-0", "ansible_ssh_common_args", known_hosts)), f"cc@{worker['ansible_host']}")
    assert outer["stricthostkeychecking"] == "accept-new" and outer["userknownhostsfile"] == known_hosts
    jump = shlex.split(outer["proxycommand"])
    assert jump[:3] == ["ssh", "-W", "%h:%p"] and jump[-1] == f"cc@{FLOATING_IP}"
    inner = resolved(jump[3:-1], jump[-1])  # the jump host's own connection
    assert inner["stricthostkeychecking"] == "accept-new" and inner["userknownhostsfile"] == known_hosts
    assert inner["hostname"] == FLOATING_IP and inner["connecttimeout"] == "30"

    control = resolved(shlex.split(ansible_var(inventory, "control-0", "ansible_ssh_common_args", known_hosts)), f"cc@{FLOATING_IP}")
    assert control["stricthostkeychecking"] == "accept-new" and control.get("proxycommand", "none") == "none"


def test_each_host_names_its_instance_so_new_nodes_mean_new_host_keys():
    mocks, outputs = run("dev")
    hosts = yaml.safe_load(outputs["ansible_inventory"])["all"]["children"]
    instances = {i.name: f"{i.name}-id" for i in mocks.of("openstack:compute/instance:Instance")}
    assert {h: v["instance_id"] for group in hosts.values() for h, v in group["hosts"].items()} == {
        "control-0": instances["dev-control-0"], "worker-0": instances["dev-worker-0"]}
