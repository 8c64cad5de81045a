"""`mlops gitops wait` against a local Kubernetes API (HTTPS, its own CA, a bearer token) that answers as the real one
does for an ArgoCD Application, with real git repositories where main moved on past the promotion commit.

The Application answers follow ArgoCD v3.5.1: the CRD (manifests/crds/application-crd.yaml; the fixture is validated
against its openAPIV3Schema below) and pkg/apis/application/v1alpha1/types.go (SyncStatus: status, revision,
revisions; AppHealthStatus: status; OperationState: phase, message, startedAt, syncResult), with the status codes of
types.go (Synced, OutOfSync), gitops-engine/pkg/health (Healthy, Progressing, ...) and gitops-engine/pkg/sync/common
(Running, Succeeded, ...). Errors are Kubernetes Status objects as k8s.io/apimachinery/pkg/api/errors builds them
(NewNotFound, NewForbidden with the authorizer's message from k8s.io/apiserver responsewriters.forbiddenMessage, and
the authenticator's 401 "Unauthorized").
"""

from __future__ import annotations

import datetime
import json
import os
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gitops import require_cache
from mlops.core.errors import MlopsError
from mlops.gitops.charts import MissingArtifact, find_artifact
from mlops.gitops.validate import Schemas, crd_documents, problems
from mlops.release.wait import KubernetesApi, wait
from services import MLOPS, clone, git, push_commit
from test_cli import assert_clean_error

ROOT = Path(__file__).resolve().parents[1]
APP, NAMESPACE = "transformers-qa-staging", "argocd"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YXJnbzptbG9wcy1waXBlbGluZSJ9.c2lnbmF0dXJl"
NOW = "2026-12-01T12:00:00Z"


def application(sync: str, revision: str | None, health: str, phase: str = "Succeeded", revisions: list[str] | None = None) -> dict:
    """An Application as GET /apis/argoproj.io/v1alpha1/namespaces/argocd/applications/<name> returns it."""
    status_sync = {"status": sync, "comparedTo": {"destination": {"server": "https://kubernetes.default.svc", "namespace": "transformers-qa"},
                                                  "source": {"repoURL": "https://github.com/transformers-qa/transformers-qa.git",
                                                             "path": "gitops/charts/transformers-qa", "targetRevision": "main"}}}
    if revision:
        status_sync["revision"] = revision
    if revisions:
        status_sync["revisions"] = revisions
    operation = {"operation": {"sync": {"revision": revision or "", "syncStrategy": {"hook": {}}},
                               "initiatedBy": {"automated": True}, "retry": {"limit": 5}},
                 "phase": phase, "startedAt": NOW, "message": "successfully synced (all tasks run)" if phase == "Succeeded" else
                 "waiting for healthy state of apps/Deployment/transformers-qa-triton"}
    if phase != "Running":
        operation["finishedAt"] = NOW
        operation["syncResult"] = {"revision": revision or "", "resources": [
            {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "transformers-qa", "name": "transformers-qa-triton",
             "status": "Synced", "message": "deployment.apps/transformers-qa-triton configured", "hookPhase": "Running",
             "syncPhase": "Sync"}]}
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": APP, "namespace": NAMESPACE, "uid": "4c1f5e3a-9d2b-4a57-8f43-2b6f0e9c1d7e", "resourceVersion": "918273",
                     "generation": 42, "creationTimestamp": "2026-11-01T09:00:00Z",
                     "annotations": {"argocd.argoproj.io/sync-wave": "3"}, "finalizers": ["resources-finalizer.argocd.argoproj.io"]},
        "spec": {"project": "default",
                 "source": {"repoURL": "https://github.com/transformers-qa/transformers-qa.git", "targetRevision": "main",
                            "path": "gitops/charts/transformers-qa",
                            "helm": {"releaseName": "transformers-qa", "valueFiles": ["../../envs/staging/values/model.yaml"]}},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": "transformers-qa"},
                 "syncPolicy": {"automated": {"prune": True, "selfHeal": True}}},
        "status": {"sync": status_sync, "health": {"status": health, "lastTransitionTime": NOW}, "operationState": operation,
                   "reconciledAt": NOW, "sourceType": "Helm", "controllerNamespace": "argocd",
                   "summary": {"images": ["ghcr.io/transformers-qa/api:v1.2.0", "ghcr.io/transformers-qa/triton:v1.2.0"]},
                   "resources": [{"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "transformers-qa",
                                  "name": "transformers-qa-triton", "status": sync, "health": {"status": health}}],
                   "history": [{"id": 7, "revision": revision or "", "deployedAt": NOW, "deployStartedAt": NOW,
                                "source": {"repoURL": "https://github.com/transformers-qa/transformers-qa.git",
                                           "path": "gitops/charts/transformers-qa", "targetRevision": "main"}}]},
    }


def kubernetes_status(code: int, reason: str, message: str, name: str | None = None) -> dict:
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}
    if name:
        status["details"] = {"name": name, "group": "argoproj.io", "kind": "applications"}
    return status


@pytest.mark.parametrize("fixture", [application("Synced", "a" * 40, "Healthy"), application("OutOfSync", "b" * 40, "Progressing", "Running"),
                                     application("Synced", None, "Healthy", revisions=["1.6.0", "c" * 40])])
def test_the_fixture_is_an_application_as_argocd_defines_it(fixture: dict):
    """Against ArgoCD v3.5.1's CRD from the chart cache, unknown fields rejected (mlops.gitops.validate)."""
    require_cache()
    try:
        crds = find_artifact("argo-cd", "v3.5.1") / "manifests" / "crds"
    except MissingArtifact as e:
        pytest.skip(str(e))
    assert problems([fixture], Schemas(crd_documents([crds / "application-crd.yaml"]))) == []


# -- a Kubernetes API server on 127.0.0.1 with its own CA -------------------------------------------------------------

def tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A CA (ca.crt, as the service-account folder holds it) and a server certificate for 127.0.0.1 signed by it."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k3s-server-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
              .issuer_name(ca_name).public_key(key.public_key()).serial_number(2).not_valid_before(now)
              .not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
              .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "ca.crt", folder / "server.crt", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


class FakeKubernetesApi:
    """Answers GET of one Application: each request takes the next answer of ``answers`` (the last one repeats)."""

    def __init__(self, folder: Path):
        ca, cert, key = tls_files(folder / "tls")
        self.ca_file, self.answers, self.forbidden, self.requests = ca, [], False, []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                fake.requests.append(self.path)
                path = f"/apis/argoproj.io/v1alpha1/namespaces/{NAMESPACE}/applications/"
                name = self.path.removeprefix(path) if self.path.startswith(path) else None
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self.reply(401, kubernetes_status(401, "Unauthorized", "Unauthorized"))
                elif fake.forbidden:
                    self.reply(403, kubernetes_status(403, "Forbidden", f'applications.argoproj.io "{name}" is forbidden: User '
                                                      '"system:serviceaccount:argo:mlops-pipeline" cannot get resource "applications" '
                                                      f'in API group "argoproj.io" in the namespace "{NAMESPACE}"', name))
                elif name != APP:
                    self.reply(404, kubernetes_status(404, "NotFound", f'applications.argoproj.io "{name}" not found', name))
                else:
                    self.reply(200, fake.answers.pop(0) if len(fake.answers) > 1 else fake.answers[0])

            def reply(self, code: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def service_account(self, folder: Path, token: str = TOKEN) -> Path:
        """The pod's /var/run/secrets/kubernetes.io/serviceaccount: token, ca.crt, namespace."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "token").write_text(token)
        (folder / "ca.crt").write_bytes(self.ca_file.read_bytes())
        (folder / "namespace").write_text("argo")
        return folder

    def environment(self) -> dict[str, str]:
        return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(self.port)}

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def kube(tmp_path: Path):
    api = FakeKubernetesApi(tmp_path)
    yield api
    api.stop()


@pytest.fixture
def repos(tmp_path: Path):
    """The promotion commit on main, then main moved on by someone else; the pod's clone (taken in between) lacks that."""
    seed = tmp_path / "seed"
    git(tmp_path, "init", "--quiet", "-b", "main", str(seed))
    (seed / "README").write_text("seed\n")
    git(seed, "add", ".")
    git(seed, "-c", "user.email=a@b", "-c", "user.name=seed", "commit", "--quiet", "-m", "seed")
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(seed), str(remote)], check=True)
    base = git(remote, "rev-parse", "main").strip()
    commit = push_commit(remote, tmp_path / "promoter", "model.yaml", 'model:\n  version: "2"\n',
                         "promote(staging): transformers-qa version 2 (was 1)")
    pod = clone(remote, tmp_path / "pod")  # the wait step's repository artifact
    later = push_commit(remote, tmp_path / "other", "docs.md", "unrelated\n", "docs: something else lands on main")
    unrelated = push_commit(remote, tmp_path / "sibling", "x", "x\n", "a branch without the promotion", base=base,
                            ref="refs/heads/other-branch")
    return {"pod": pod, "base": base, "commit": commit, "later": later, "unrelated": unrelated}


def run_wait(kube: FakeKubernetesApi, repos: dict, tmp_path: Path, timeout: float, lines: list[str]) -> str:
    return wait(APP, NAMESPACE, repos["commit"], timeout, repo_path=repos["pod"], echo=lines.append, poll_seconds=0.05,
                api=KubernetesApi(f"https://127.0.0.1:{kube.port}", kube.service_account(tmp_path / "sa") / "token", kube.ca_file))


def test_waits_for_a_synced_healthy_revision_that_contains_the_commit(kube, repos, tmp_path: Path):
    kube.answers = [application("OutOfSync", repos["base"], "Healthy", "Running"),
                    application("Synced", repos["later"], "Progressing", "Running"),
                    application("Synced", repos["later"], "Progressing"),
                    application("Synced", repos["later"], "Healthy")]
    lines: list[str] = []
    assert run_wait(kube, repos, tmp_path, 30, lines) == repos["later"]
    # `kubectl wait --for=jsonpath={.status.sync.revision}=<commit>` would never have matched: main moved on
    assert repos["later"] != repos["commit"]
    assert lines[-1] == f"Application argocd/{APP} is Synced at {repos['later'][:12]} (contains {repos['commit'][:12]}) and Healthy"
    assert any("OutOfSync" in line and "sync operation Running" in line for line in lines)
    assert len(kube.requests) == 4


def test_a_multi_source_application_reports_its_git_revision_among_chart_versions(kube, repos, tmp_path: Path):
    kube.answers = [application("Synced", None, "Healthy", revisions=["1.6.0", repos["later"]])]
    assert run_wait(kube, repos, tmp_path, 30, []) == repos["later"]


@pytest.mark.parametrize("revision", ["base", "unrelated"])
def test_synced_and_healthy_without_the_commit_is_not_done(kube, repos, tmp_path: Path, revision: str):
    kube.answers = [application("Synced", repos[revision], "Healthy")]
    with pytest.raises(MlopsError, match=rf"after 0s Application argocd/{APP} is not Synced and Healthy at a revision containing "
                                         rf"{repos['commit'][:12]}: Synced at {repos[revision][:12]}, Healthy.*does not contain"):
        run_wait(kube, repos, tmp_path, 0.2, [])


def cli(kube: FakeKubernetesApi, repos: dict, tmp_path: Path, *extra: str, token: str = TOKEN, env: dict | None = None,
        commit: str | None = None, ca: Path | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, **kube.environment(), **(env or {})}
    folder = kube.service_account(tmp_path / "sa", token)
    if ca:
        (folder / "ca.crt").write_bytes(ca.read_bytes())
    return subprocess.run([MLOPS, "gitops", "wait", "--app", APP, "--namespace", NAMESPACE, "--commit", commit or repos["commit"],
                           "--timeout", "5", "--service-account", str(folder), *extra],
                          cwd=repos["pod"], env=environment, capture_output=True, text=True, timeout=120)


def test_the_command_prints_the_revision_it_found(kube, repos, tmp_path: Path):
    kube.answers = [application("Synced", repos["later"], "Healthy")]
    done = cli(kube, repos, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == repos["later"] + "\n"
    assert "is Synced at" in done.stderr


@pytest.mark.parametrize(("case", "message"), [
    ("token", "the Kubernetes API refused the service-account token (Unauthorized)"),
    ("forbidden", 'cannot get resource "applications" in API group "argoproj.io" in the namespace "argocd": bind the pod\'s service account'),
    ("app", 'applications.argoproj.io "nope" not found: check --app and --namespace'),
    ("ca", "does not match the cluster CA"),
    ("outside", "KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set"),
    ("commit", "is neither in"),
])
def test_errors_are_one_clear_line(kube, repos, tmp_path: Path, case: str, message: str):
    kube.answers = [application("Synced", repos["later"], "Healthy")]
    kube.forbidden = case == "forbidden"
    extra, env, token, commit, ca = [], {}, TOKEN, None, None
    if case == "token":
        token = "expired-token"
    elif case == "app":
        extra = ["--app", "nope"]
    elif case == "outside":
        env = {"KUBERNETES_SERVICE_HOST": ""}
    elif case == "commit":
        commit = "f" * 40
    elif case == "ca":
        ca = tls_files(tmp_path / "other-ca")[0]  # a CA that did not sign the server's certificate
    done = cli(kube, repos, tmp_path, *extra, token=token, env=env, commit=commit, ca=ca)
    assert_clean_error(done, message)
    assert done.stdout == ""

