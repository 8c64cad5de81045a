"""Every environment rendered as ArgoCD renders it, upstream charts included, and every object validated.

`mlops gitops render ENV` starts from the root Application the bootstrap creates, renders the apps chart into
the environment's Applications, and renders each with the exact chart, version, value files and release name it
names (tests/support/gitops.py). Each object is then checked as the API server would check it (mlops.gitops.validate).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from infra.config import BootstrapConfig
from mlops.gitops.charts import find_chart
from mlops.gitops.images import all_images, images_in, is_pinned
from mlops.gitops.render import KUBERNETES_VERSION, applied_by_argocd, load_all, root_application, sources
from mlops.gitops.validate import problems
from mlops.release.layout import ENVIRONMENTS
from support.gitops import ENV_APPS, ROOT, application, documents, missing, render_all, rendered, require_cache, schemas

MLOPS = [sys.executable, "-m", "mlops"]


@pytest.mark.parametrize(("env", "app"), ENV_APPS, ids=[f"{env}:{app}" for env, app in ENV_APPS])
def test_every_object_is_valid(env: str, app: str):
    result = application(env, app)
    if result.missing:
        pytest.skip(result.missing)
    assert result.documents, f"{app} renders nothing"
    found = problems(result.documents, schemas(env))
    no_crd = [p for p in found if "no CustomResourceDefinition" in p]
    if no_crd and missing(env):
        pytest.skip(f"{no_crd[0]}: its CRD comes with a chart that is not in the cache ({missing(env)[0]})")
    assert found == []


def test_the_cluster_version_is_the_one_the_stacks_install():
    assert BootstrapConfig().k3s_version.startswith(f"v{KUBERNETES_VERSION}+k3s")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_upstream_charts_are_the_pinned_versions(env: str):
    """The cache holds exactly the chart and version each Application names (its Chart.yaml says so)."""
    for result in rendered(env)[1:]:
        for source in sources(result.application):
            if "chart" in source and not result.missing:
                chart = yaml.safe_load((find_chart(source["chart"], source["targetRevision"], source["repoURL"])
                                        / "Chart.yaml").read_text())
                assert (chart["name"], str(chart["version"])) == (source["chart"], str(source["targetRevision"])), result.name


def test_the_root_application_passes_the_domain_and_this_repository():
    root = root_application(ROOT, "staging", "198.51.100.7.nip.io")
    parameters = {p["name"]: p["value"] for p in root["spec"]["source"]["helm"]["parameters"]}
    assert parameters == {"domain": "198.51.100.7.nip.io", "repoURL": BootstrapConfig().repo_url,
                          "targetRevision": BootstrapConfig().revision}
    assert root["spec"]["source"]["helm"]["valueFiles"] == ["../envs/staging/apps.yaml"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_host_name_comes_from_the_domain(env: str):
    """No host is written in git: every Ingress host is <name>.<domain>, with a certificate from the ACME issuer."""
    ingresses = documents(env, "Ingress")
    assert ingresses, "no Ingress at all"
    for ingress in ingresses:
        hosts = [rule["host"] for rule in ingress["spec"]["rules"]]
        assert all(re.fullmatch(r"[a-z]+\.203\.0\.113\.10\.nip\.io", host) for host in hosts), hosts
        assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
        assert [h for tls in ingress["spec"]["tls"] for h in tls["hosts"]] == hosts
    assert "example.org" not in "".join(r.manifests for r in rendered(env))


def test_helm_test_hooks_are_left_out_as_argocd_does():
    assert not applied_by_argocd({"metadata": {"annotations": {"helm.sh/hook": "test"}}})
    assert applied_by_argocd({"metadata": {"annotations": {"helm.sh/hook": "pre-install,pre-upgrade"}}})
    monitoring = application("dev", "platform-kube-prometheus-stack-dev")
    if monitoring.missing:
        pytest.skip(monitoring.missing)
    assert '"helm.sh/hook": test' in monitoring.manifests  # Grafana's chart ships a test Pod ...
    assert not [d for d in monitoring.documents if "test" in (d["metadata"].get("annotations") or {}).get("helm.sh/hook", "")]


def test_images_are_listed_in_one_place_and_pinned(capsys):
    """Every image the environments run (and the Dockerfiles build on), as `mlops gitops images` prints it."""
    found = all_images(ROOT, [d for env in ENVIRONMENTS for d in documents(env)])
    with capsys.disabled():
        print("\nimages:\n  " + "\n  ".join(sorted(found)))
    assert {"quay.io/argoproj/argoexec:v4.0.4", "nvcr.io/nvidia/tritonserver:24.10-py3", "rancher/local-path-provisioner:v0.0.30",
            "quay.io/argoproj/argocd:v3.5.1", "quay.io/minio/mc:RELEASE.2025-08-13T08-35-41Z"} <= found
    assert not [image for image in found if "{{" in image or not is_pinned(image)]
    assert not is_pinned("quay.io/x/y:latest") and not is_pinned("quay.io/x/y") and is_pinned("quay.io/x/y@sha256:" + "0" * 64)


def test_images_in_finds_operator_flags():
    container = {"image": "a/b:1", "args": ["--executor-image", "quay.io/argoproj/argoexec:v4.0.4",
                                            "--prometheus-config-reloader=quay.io/p/r:v0.88.1", "--log-level", "info"]}
    assert images_in({"spec": {"containers": [container]}}) == {"a/b:1", "quay.io/argoproj/argoexec:v4.0.4", "quay.io/p/r:v0.88.1"}


def test_cli_render_and_validate():
    done = subprocess.run([*MLOPS, "gitops", "render", "dev", "--domain", "198.51.100.7.nip.io"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    if missing("dev"):  # a chart the cache lacks is one line saying how to fetch it, and nothing on stdout
        assert done.returncode == 1 and done.stdout == ""
        assert re.fullmatch(r"error: chart \S+ \S+ is not in the chart cache .* fill it with `helm pull .*", done.stderr.strip())
    else:
        assert done.returncode == 0, done.stderr
        docs = load_all(done.stdout)
        assert docs[0]["metadata"]["name"] == "root-dev" and "qa.198.51.100.7.nip.io" in done.stdout
        checked = subprocess.run([*MLOPS, "gitops", "validate", "dev"], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert re.search(r"dev: 7 Applications, \d+ objects checked", checked.stderr)
    bad = subprocess.run([*MLOPS, "gitops", "render", "qa"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.strip().splitlines()[-1].startswith("error: unknown environment 'qa'")


def test_the_committed_image_list_is_the_rendered_one():
    """gitops/images.txt is what CI looks up in the registries (.github/workflows/ci.yaml); regenerate it with
    `.venv/bin/mlops gitops images > gitops/images.txt`."""
    listed = set((ROOT / "gitops" / "images.txt").read_text().split())
    found = all_images(ROOT, [d for env in ENVIRONMENTS for d in documents(env)])
    assert found <= listed, f"not in gitops/images.txt: {sorted(found - listed)}"
    if not any(missing(env) for env in ENVIRONMENTS):
        assert listed == found, f"no longer used: {sorted(listed - found)}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_a_revision_renders_the_same_every_time(env: str):
    """A chart that renders a random value (a generated key) would make every sync differ from the last, and a
    revert no true rollback: two renders of one revision are byte-identical."""
    require_cache()
    assert render_all(ROOT, env) == render_all(ROOT, env)
