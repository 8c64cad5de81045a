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

import os
import subprocess
from pathlib import Path

import pytest

from mlops.core.errors import MlopsError
from mlops.gitops.charts import MissingArtifact, find_artifact
from mlops.gitops.validate import Schemas, crd_documents, problems
from mlops.release.wait import KubernetesApi, wait
from support.cli import assert_clean_error
from support.gitops import require_cache
from support.kubernetes import APP, NAMESPACE, TOKEN, FakeKubernetesApi, application, tls_files
from support.services import MLOPS, clone, git, push_commit


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

