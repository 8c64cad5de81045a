"""Kubernetes + ArgoCD on the new nodes: ansible-runner driven by `pulumi up` (a dynamic resource).

It runs ``infra/ansible/site.yml`` once the nodes exist and again only when its inputs change
(inventory, versions, repository, secrets, or the playbooks themselves: their content is part of
the fingerprint). The playbooks are idempotent, so a re-run converges rather than reinstalls. The
kubeconfig k3s writes is fetched back, pointed at the floating IP and exported as a secret.

SSH host keys are recorded on first contact (``accept-new``) in a known_hosts file kept in the state,
and checked on every later run while the inventory (which names each instance) is the same; new
instances start a new file, so a reused floating IP never meets a stale key.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

ANSIBLE_DIR = Path(__file__).resolve().parent / "ansible"
PLAYBOOK = ANSIBLE_DIR / "site.yml"
# ansible-runner starts `ansible-playbook` from PATH: put the virtualenv's (pinned in requirements.lock) first.
RUNNER_PATH = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


class BootstrapError(Exception):
    pass


def playbook_digest(folder: Path = ANSIBLE_DIR) -> str:
    """A hash of every playbook, role and template: editing one re-runs the bootstrap."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _failure(runner) -> str:
    for event in reversed(list(runner.events)):
        if event.get("event") in ("runner_on_failed", "runner_on_unreachable"):
            data = event["event_data"]
            result = data.get("res", {})
            reason = result.get("msg") or result.get("stderr") or "no message"
            return f"task {data.get('task')!r} failed on {data.get('host')}: {' '.join(str(reason).split())[:300]}"
    return f"ansible-runner ended with status {runner.status} (rc {runner.rc})"


def run_playbook(props: dict, known_hosts: str = "") -> dict:
    """Run the playbook against the inventory, trusting the host keys in `known_hosts`; the outputs (kubeconfig
    pointed at the floating IP, the host keys now known)."""
    import ansible_runner

    with tempfile.TemporaryDirectory(prefix="qa-bootstrap-") as work:
        work_dir = Path(work)
        (work_dir / "inventory").mkdir()
        (work_dir / "inventory" / "hosts.yml").write_text(props["inventory"])
        known_hosts_file = work_dir / "known_hosts"
        known_hosts_file.write_text(known_hosts)
        kubeconfig = work_dir / "kubeconfig"
        runner = ansible_runner.run(
            private_data_dir=str(work_dir),
            playbook=props["playbook"],
            extravars={**props["extravars"], "k3s_server_kubeconfig_dest": str(kubeconfig),
                       "bootstrap_known_hosts": str(known_hosts_file)},
            roles_path=str(Path(props["playbook"]).parent / "roles"),
            envvars={"ANSIBLE_PIPELINING": "True", "PATH": RUNNER_PATH},
            quiet=True,
        )
        recorded = known_hosts_file.read_text()
        if runner.status != "successful":
            raise BootstrapError(f"bootstrap failed: {_failure(runner)}")
        if not kubeconfig.is_file():
            raise BootstrapError("bootstrap finished but fetched no kubeconfig from the control node")
        text = kubeconfig.read_text().replace("https://127.0.0.1:6443", f"https://{props['floating_ip']}:6443")
    return {**props, "kubeconfig": text, "known_hosts": recorded}


class BootstrapProvider(ResourceProvider):
    def create(self, props: dict) -> CreateResult:
        return CreateResult(id_=props["fingerprint"], outs=run_playbook(props))

    def diff(self, id_: str, olds: dict, news: dict) -> DiffResult:
        return DiffResult(changes=olds.get("fingerprint") != news.get("fingerprint"))

    def update(self, id_: str, olds: dict, news: dict) -> UpdateResult:
        # The same instances keep their host keys: a changed key then fails the run instead of being trusted.
        known = (olds.get("known_hosts") or "") if olds.get("inventory") == news["inventory"] else ""
        return UpdateResult(outs=run_playbook(news, known))

    def delete(self, id_: str, props: dict) -> None:
        pass  # what it installed lives on the nodes, which the cluster deletes


def fingerprint(inventory: str, floating_ip: str, extravars: dict, digest: str) -> str:
    canonical = json.dumps({"inventory": inventory, "floating_ip": floating_ip, "extravars": extravars, "playbooks": digest}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class Bootstrap(Resource):
    kubeconfig: pulumi.Output[str]

    def __init__(self, name: str, *, inventory: pulumi.Input[str], floating_ip: pulumi.Input[str], extravars: pulumi.Input[dict],
                 playbook: Path = PLAYBOOK, opts: pulumi.ResourceOptions | None = None) -> None:
        digest = playbook_digest(playbook.parent)
        props = {
            "inventory": inventory, "floating_ip": floating_ip, "extravars": extravars, "playbook": str(playbook),
            "fingerprint": pulumi.Output.all(inventory, floating_ip, extravars).apply(lambda a: fingerprint(*a, digest)),
            "kubeconfig": None, "known_hosts": None,
        }
        secret = pulumi.ResourceOptions(additional_secret_outputs=["kubeconfig", "extravars"])
        super().__init__(BootstrapProvider(), name, props, pulumi.ResourceOptions.merge(secret, opts))
