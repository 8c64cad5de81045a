"""A local Kubernetes API (HTTPS, its own CA, a bearer token) answering for ArgoCD Applications as the real one does
(ArgoCD v3.5.1 types; errors are Kubernetes Status objects: see tests/deploy/gitops/test_wait.py)."""

from __future__ import annotations

import datetime
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

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
