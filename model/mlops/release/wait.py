"""`mlops gitops wait`: wait until ArgoCD runs a commit.

Done when the Application is Synced at a revision that contains the commit and Healthy. "Contains",
not "equals": anything else that lands on main after the promotion commit (another promotion, a docs
change) moves the revision ArgoCD syncs past it. Containment is `git merge-base --is-ancestor` in a
clone of the repository, fetched when ArgoCD reports a revision the clone does not have yet.

The Application is read from the Kubernetes API (GET
/apis/argoproj.io/v1alpha1/namespaces/<ns>/applications/<name>) as in-cluster clients do: the API
server at KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT, the pod's service-account token (read at
every request: Kubernetes rotates it) and the cluster CA from the service-account folder. Fields as in
ArgoCD v3.5.1 (pkg/apis/application/v1alpha1/types.go): status.sync.{status,revision,revisions},
status.health.status, status.operationState.{phase,message}.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from mlops.core.errors import MlopsError
from mlops.release.git import GitRepo

POLL_SECONDS = 10.0
REPORT_EVERY_SECONDS = 30.0
UNFINISHED_OPERATIONS = {"Running", "Terminating"}  # gitops-engine pkg/sync/common OperationPhase
GIT_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")  # a multi-source app also lists chart versions


@dataclass(frozen=True)
class KubernetesApi:
    url: str
    token_file: Path
    ca_file: Path

    @classmethod
    def in_cluster(cls, service_account: Path) -> KubernetesApi:
        """The API server Kubernetes names in the pod's environment; ``service_account``: the mounted token's folder."""
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
        if not host or not port:
            raise MlopsError("KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set: `mlops gitops wait` runs in a "
                             "pod, where Kubernetes sets them")
        for path in (service_account / "token", service_account / "ca.crt"):
            if not path.is_file():
                raise MlopsError(f"no {path}: the pod's service-account token is not mounted "
                                 "(automountServiceAccountToken must be true for its service account)")
        host = f"[{host}]" if ":" in host else host  # an IPv6 address
        return cls(f"https://{host}:{port}", service_account / "token", service_account / "ca.crt")

    def application(self, namespace: str, name: str) -> dict | str:
        """The Application object, or a short reason it could not be read this time (the next poll may)."""
        url = f"{self.url}/apis/argoproj.io/v1alpha1/namespaces/{namespace}/applications/{name}"
        token = self.token_file.read_text(encoding="utf-8").strip()
        try:
            response = requests.get(url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                                    verify=str(self.ca_file), timeout=30, allow_redirects=False)
        except requests.exceptions.SSLError as e:
            raise MlopsError(f"the Kubernetes API at {self.url} does not match the cluster CA {self.ca_file}: "
                             f"{str(e).splitlines()[0][:200]}") from None
        except requests.RequestException as e:
            return f"Kubernetes API unreachable ({type(e).__name__})"
        if response.status_code == 200:
            return response.json()
        message = _status_message(response)
        if response.status_code == 401:
            raise MlopsError(f"the Kubernetes API refused the service-account token ({message})")
        if response.status_code == 403:
            raise MlopsError(f"{message}: bind the pod's service account to a Role that may get applications in "
                             f"namespace {namespace} (workflows/rbac.yaml)")
        if response.status_code == 404:
            raise MlopsError(f"{message}: check --app and --namespace")
        return f"Kubernetes API answered HTTP {response.status_code} ({message})"


def _status_message(response: requests.Response) -> str:
    """The `message` of a Kubernetes Status answer (apimachinery pkg/api/errors), else the body's start."""
    try:
        return str(response.json()["message"])
    except (ValueError, KeyError, TypeError):
        return response.text.strip()[:200] or response.reason


@dataclass(frozen=True)
class AppState:
    sync: str
    revisions: tuple[str, ...]
    health: str
    operation: str
    message: str

    @classmethod
    def of(cls, application: dict) -> AppState:
        status = application.get("status") or {}
        sync, operation = status.get("sync") or {}, status.get("operationState") or {}
        revisions = tuple(r for r in [sync.get("revision"), *(sync.get("revisions") or [])] if r)
        return cls(sync.get("status") or "Unknown", revisions, (status.get("health") or {}).get("status") or "Unknown",
                   operation.get("phase") or "", operation.get("message") or "")

    def describe(self) -> str:
        at = f" at {', '.join(r[:12] for r in self.revisions)}" if self.revisions else ""
        operation = f", sync operation {self.operation}" if self.operation else ""
        if self.operation and self.message:
            operation += f": {self.message[:120]}"
        return f"{self.sync}{at}, {self.health}{operation}"


def _containing_revision(repo: GitRepo, commit: str, revisions: tuple[str, ...]) -> str | None:
    """The first git revision that contains ``commit``; fetches first if the clone lacks one of them."""
    shas = [r for r in revisions if GIT_SHA.fullmatch(r)]
    if not all(repo.has_commit(sha) for sha in shas):
        repo.run("fetch", "--quiet", "origin")
    return next((sha for sha in shas if repo.has_commit(sha) and repo.is_ancestor(commit, sha)), None)


def wait(app: str, namespace: str, commit: str, timeout: float, *, repo_path: Path, api: KubernetesApi,
         echo=print, poll_seconds: float = POLL_SECONDS) -> str:
    """Poll until ``app`` is Synced at a revision containing ``commit`` and Healthy; return that revision."""
    repo = GitRepo(repo_path)
    if not GIT_SHA.fullmatch(commit):
        raise MlopsError(f"--commit {commit!r} is not a full commit sha; pass what `mlops promote` printed")
    if not repo.has_commit(commit):
        repo.run("fetch", "--quiet", "origin")
        if not repo.has_commit(commit):
            raise MlopsError(f"commit {commit} is neither in {repo.root} nor on its remote: pass the promotion commit's sha")
    where = f"Application {namespace}/{app}"
    deadline = time.monotonic() + timeout
    next_report, last = 0.0, ""
    while True:
        answer = api.application(namespace, app)
        if isinstance(answer, str):
            state = answer
        else:
            current = AppState.of(answer)
            state = current.describe()
            if current.sync == "Synced" and current.health == "Healthy" and current.operation not in UNFINISHED_OPERATIONS:
                revision = _containing_revision(repo, commit, current.revisions)
                if revision:
                    echo(f"{where} is Synced at {revision[:12]} (contains {commit[:12]}) and Healthy")
                    return revision
                state += f" (does not contain {commit[:12]} yet)"
        if time.monotonic() >= deadline:
            raise MlopsError(f"after {timeout:.0f}s {where} is not Synced and Healthy at a revision containing "
                             f"{commit[:12]}: {state}; check the Application in ArgoCD")
        if state != last or time.monotonic() >= next_report:
            echo(f"  waiting for {where} to run {commit[:12]}: {state}")
            next_report, last = time.monotonic() + REPORT_EVERY_SECONDS, state
        time.sleep(poll_seconds)
