"""GitHub Actions workflows validate against the published workflow schema, every action is pinned to a commit, and
the release and promotion workflows do what they say (triggers, permissions, the commands their steps run)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support.paths import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yaml"))
CHECK_JSONSCHEMA = str(Path(sys.executable).with_name("check-jsonschema"))


def test_there_are_workflows():
    assert WORKFLOWS


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_the_github_schema(workflow: Path):
    result = subprocess.run([CHECK_JSONSCHEMA, "--builtin-schema", "vendor.github-workflows", str(workflow)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_opens_with_a_comment_and_pins_every_action(workflow: Path):
    text = workflow.read_text()
    assert text.startswith("# "), "each workflow opens with a comment on what it does and when"
    steps = [step for job in yaml.safe_load(text)["jobs"].values() for step in job.get("steps", [])]
    for uses in [s["uses"] for s in steps if "uses" in s]:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), f"{uses} is not pinned to a commit"


# What the release and promotion workflows do: triggers, guards, permissions and the commands their steps run

RELEASE = ROOT / ".github" / "workflows" / "release.yaml"
PROMOTE = ROOT / ".github" / "workflows" / "promote.yaml"
SHA_WITH_VERSION = re.compile(r"uses:\s*[\w.-]+/[\w.-]+@[0-9a-f]{40}\s+#\s*v\d+\.\d+\.\d+\s*$")
# the only write scopes any job holds, and where: pushing images; pushing the promotion branch and opening its PR
WRITE_SCOPES = {("release.yaml", "images"): {"packages"}, ("promote.yaml", "pull-request"): {"contents", "pull-requests"}}


def load(workflow: Path) -> dict:
    return yaml.safe_load(workflow.read_text())


def triggers(workflow: dict) -> dict:
    return workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as True


def steps_running(job: dict, text: str) -> list[dict]:
    return [step for step in job["steps"] if text in step.get("run", "")]


def the_step(job: dict, text: str) -> dict:
    found = steps_running(job, text)
    assert len(found) == 1, f"expected one step running {text!r}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_job_has_a_timeout(workflow: Path):
    for name, job in load(workflow)["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int) and 0 < job["timeout-minutes"] <= 120, name


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_pinned_action_names_its_release(workflow: Path):
    for line in workflow.read_text().splitlines():
        if line.strip().startswith(("uses:", "- uses:")):
            assert SHA_WITH_VERSION.search(line), f"{line.strip()!r}: pin a commit and say which release (# vX.Y.Z)"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_scripts_read_expressions_through_env(workflow: Path):
    """`${{ }}` inside a run script is pasted into the shell before it runs (a tag or input could inject code)."""
    for name, job in load(workflow)["jobs"].items():
        for step in job.get("steps", []):
            assert "${{" not in step.get("run", ""), f"{name}: {step.get('name', step['run'][:40])}"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_write_permissions_only_where_a_job_needs_them(workflow: Path):
    data = load(workflow)
    assert "write" not in str(data.get("permissions", {})), "the workflow's default token is read-only"
    for name, job in data["jobs"].items():
        scopes = job.get("permissions")
        assert scopes is not None or (workflow.name, name) not in WRITE_SCOPES, f"{name} sets its permissions"
        writes = {scope for scope, level in (scopes or {}).items() if level == "write"}
        assert writes == WRITE_SCOPES.get((workflow.name, name), set()), f"{workflow.name}: {name} may write {writes}"


def test_release_runs_only_for_pushed_v_tags():
    assert triggers(load(RELEASE)) == {"push": {"tags": ["v*"]}}


def test_no_release_is_cancelled_and_the_cluster_runs_them_one_at_a_time():
    """A concurrency group would cancel a pending release when a newer tag arrives (GitHub keeps one pending run per
    group), whatever cancel-in-progress says; the Argo mutex serialises the releases instead."""
    release = load(RELEASE)
    assert "concurrency" not in release and not any("concurrency" in job for job in release["jobs"].values())
    template = yaml.safe_load((ROOT / "workflows/train-evaluate-register-deploy.yaml").read_text())
    assert template["spec"]["synchronization"] == {"mutexes": [{"name": "release-staging"}]}


def test_release_pushes_every_image_tagged_with_the_git_tag():
    jobs = load(RELEASE)["jobs"]
    images = jobs["images"]
    assert sorted(images["strategy"]["matrix"]["image"]) == sorted(p.parent.name for p in (ROOT / "images").glob("*/Dockerfile"))
    [build] = [s for s in images["steps"] if s.get("uses", "").startswith("docker/build-push-action@")]
    assert build["with"]["context"] == "."
    assert build["with"]["file"] == "images/${{ matrix.image }}/Dockerfile"
    assert build["with"]["push"] is True
    assert build["with"]["tags"] == "ghcr.io/transformers-qa/${{ matrix.image }}:${{ github.ref_name }}"
    [login] = [s for s in images["steps"] if s.get("uses", "").startswith("docker/login-action@")]
    assert login["with"] == {"registry": "ghcr.io", "username": "${{ github.actor }}", "password": "${{ secrets.GITHUB_TOKEN }}"}


def test_release_submits_the_template_after_the_images_with_the_tag():
    train = load(RELEASE)["jobs"]["train"]
    assert train["needs"] == "images" or train["needs"] == ["images"]
    step = the_step(train, "submit_workflow.py")
    assert step["env"]["RELEASE"] == "${{ github.ref_name }}"
    assert step["env"]["ARGO_SERVER_URL"] == "${{ vars.ARGO_SERVER_URL }}"
    assert step["env"]["ARGO_TOKEN"] == "${{ secrets.ARGO_TOKEN }}"
    command = step["run"].replace("\\\n", " ")
    for part in ('--server "$ARGO_SERVER_URL"', "--namespace argo", "--template train-evaluate-register-deploy",
                 '-p "release=$RELEASE"', '-p "image-tag=$RELEASE"'):
        assert part in command
    assert "GITHUB_STEP_SUMMARY" in step["run"]
    assert the_step(train, "pip install")["run"].split().count("hera==7.1.0") == 1


def test_promotion_is_manual_per_environment_and_alias_sync_follows_main():
    on = triggers(load(PROMOTE))
    assert set(on) == {"workflow_dispatch", "push"}
    inputs = on["workflow_dispatch"]["inputs"]
    assert inputs["environment"] == {"description": "Environment to promote", "required": True, "type": "choice", "options": ["prod", "dev"]}
    assert inputs["version"]["required"] is False and not inputs["version"].get("default")
    assert on["push"] == {"branches": ["main"], "paths": ["gitops/envs/prod/values/model.yaml", "gitops/envs/dev/values/model.yaml"]}
    assert load(PROMOTE)["concurrency"] == {"group": "promote-${{ inputs.environment || 'aliases' }}", "cancel-in-progress": False}


def test_the_promotion_job_opens_a_pull_request_without_moving_the_alias():
    job = load(PROMOTE)["jobs"]["pull-request"]
    assert job["if"] == "github.event_name == 'workflow_dispatch'"
    assert job["environment"] == {"name": "${{ inputs.environment }}"}  # a GitHub Environment per target: its own secrets
    [checkout] = [s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")]
    assert checkout["with"]["fetch-depth"] == 0
    assert steps_running(job, "make setup")
    promote = the_step(job, "mlops promote")
    assert '.venv/bin/mlops promote --env "$ENVIRONMENT" --from staging --no-alias' in promote["run"]
    assert all("--no-alias" in line for line in promote["run"].splitlines() if "mlops promote" in line)
    assert {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"} <= set(promote["env"])
    assert all(value.startswith("${{ secrets.") for key, value in promote["env"].items() if key.startswith("MLFLOW_"))
    assert job["env"] == {"ENVIRONMENT": "${{ inputs.environment }}", "BRANCH": "promote/${{ inputs.environment }}-${{ github.run_id }}"}
    assert "gh pr create" in the_step(job, "gh pr create")["run"]


def test_the_model_store_is_reached_as_the_publisher_with_the_environments_secrets():
    """Each environment's MinIO (https://minio.<domain>) with the `publisher` user's keys from that GitHub Environment;
    MLflow with basic auth; never root keys or a per-environment name baked into the workflow."""
    publish = the_step(load(PROMOTE)["jobs"]["pull-request"], "mlops publish")
    assert publish["env"]["AWS_ENDPOINT_URL"] == "${{ secrets.MODEL_STORE_URL }}"
    assert publish["env"]["AWS_ACCESS_KEY_ID"] == "${{ secrets.MODEL_STORE_ACCESS_KEY }}"
    assert publish["env"]["AWS_SECRET_ACCESS_KEY"] == "${{ secrets.MODEL_STORE_SECRET_KEY }}"
    assert {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"} <= set(publish["env"])
    text = PROMOTE.read_text()
    assert "PROD_" not in text and "root" not in text.lower()


def test_the_alias_job_runs_only_for_pushes_and_writes_nothing():
    job = load(PROMOTE)["jobs"]["sync-alias"]
    assert job["if"] == "github.event_name == 'push'"
    step = the_step(job, "mlops sync-alias")
    assert "for env in prod dev" in step["run"] and '.venv/bin/mlops sync-alias --env "$env"' in step["run"]
    assert {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"} <= set(step["env"])
    assert job["permissions"] == {"contents": "read"}


# promote.yaml's scripts, run by bash as the runner runs them, in a scratch repository with `mlops` and `gh` stubbed


def run_step(step: dict, cwd: Path, extra_env: dict[str, str], bin_dir: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GH_", "MLFLOW_"))}
    env.update({k: "" if "${{" in v else v for k, v in step.get("env", {}).items()}, **extra_env)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def scratch(tmp_path: Path):
    repo = tmp_path / "repo"
    for env, version in (("prod", "7"), ("dev", "5")):
        values = repo / "gitops" / "envs" / env / "values"
        values.mkdir(parents=True)
        (values / "model.yaml").write_text(f'model:\n  version: "{version}"\n')
        (values / "images.yaml").write_text('images:\n  triton:\n    tag: "v1.4.0"\n  api:\n    tag: "v1.4.0"\n')
    venv_bin = repo / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    calls = tmp_path / "calls"
    (venv_bin / "mlops").write_text(f'#!/bin/sh\necho "mlops $*" >> {calls}\n')
    (venv_bin / "mlops").chmod(0o755)
    (venv_bin / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (venv_bin / "python").chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(f'#!/bin/sh\necho "gh $*" >> {calls}\n'
                                '[ "$1 $2" = "pr view" ] && echo https://github.com/o/r/pull/12\nexit 0\n')
    (bin_dir / "gh").chmod(0o755)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run([*git, "add", "gitops"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "promote(prod): qa version 7 (was 6)\n\nimages: v1.4.0 (was v1.3.0)"],
                   cwd=repo, check=True)
    return repo, bin_dir, calls


@pytest.mark.parametrize(("env", "version", "expected"), [
    ("prod", "", "--env prod --from staging --no-alias"),
    ("prod", "12", "--env prod --version 12 --no-alias"),
    ("dev", "", "--env dev --from staging --no-alias"),
])
def test_the_promotion_step_promotes_on_its_own_branch(scratch, env: str, version: str, expected: str):
    repo, bin_dir, calls = scratch
    job = load(PROMOTE)["jobs"]["pull-request"]
    result = run_step(the_step(job, "mlops promote"), repo, {"ENVIRONMENT": env, "VERSION": version, "BRANCH": f"promote/{env}-99",
                                                             "RUN_URL": "https://github.com/o/r/actions/runs/99"}, bin_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    [call] = calls.read_text().splitlines()
    assert call.startswith(f"mlops promote {expected}")
    assert "https://github.com/o/r/actions/runs/99" in call
    branch = subprocess.run(["git", "branch", "--show-current"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert branch == f"promote/{env}-99"


def test_the_promotion_step_refuses_a_version_that_is_not_a_number(scratch):
    repo, bin_dir, calls = scratch
    job = load(PROMOTE)["jobs"]["pull-request"]
    result = run_step(the_step(job, "mlops promote"), repo, {"ENVIRONMENT": "prod", "VERSION": "7; echo pwned", "BRANCH": "promote/prod-1"},
                      bin_dir)
    assert result.returncode != 0
    assert not calls.exists()


@pytest.mark.parametrize(("env", "version"), [("prod", "7"), ("dev", "5")])
def test_the_publish_step_uploads_the_version_the_environment_now_names(scratch, env: str, version: str):
    repo, bin_dir, calls = scratch
    result = run_step(the_step(load(PROMOTE)["jobs"]["pull-request"], "mlops publish"), repo, {"ENVIRONMENT": env}, bin_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls.read_text().splitlines() == [f"mlops publish --version {version} --store s3://models"]


@pytest.mark.parametrize(("env", "version", "source"), [("prod", "", "from staging"), ("prod", "7", "from version input"),
                                                        ("dev", "", "from staging")])
def test_the_pull_request_says_environment_version_and_source(scratch, tmp_path: Path, env: str, version: str, source: str):
    repo, bin_dir, calls = scratch
    summary = tmp_path / "summary.md"
    job = load(PROMOTE)["jobs"]["pull-request"]
    result = run_step(the_step(job, "gh pr create"), repo,
                      {"ENVIRONMENT": env, "VERSION": version, "BRANCH": f"promote/{env}-99", "RUNNER_TEMP": str(tmp_path),
                       "GITHUB_STEP_SUMMARY": str(summary), "RUN_URL": "https://github.com/o/r/actions/runs/99"}, bin_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    promoted = {"prod": "7", "dev": "5"}[env]
    create = next(line for line in calls.read_text().splitlines() if line.startswith("gh pr create"))
    assert f"--base main --head promote/{env}-99" in create
    assert f"--title Promote {env} to model version {promoted} ({source})" in create
    body = (tmp_path / "body.md").read_text()
    assert f"Promotes **{env}** to model version **{promoted}**, images **v1.4.0**" in body
    assert "https://github.com/o/r/actions/runs/99" in body
    assert "promote(prod): qa version 7 (was 6)" in body  # the promotion commit's structured message
    assert "https://github.com/o/r/pull/12" in summary.read_text()


def test_the_alias_step_syncs_both_environments(scratch, tmp_path: Path):
    repo, bin_dir, calls = scratch
    summary = tmp_path / "summary.md"
    result = run_step(the_step(load(PROMOTE)["jobs"]["sync-alias"], "mlops sync-alias"), repo,
                      {"GITHUB_STEP_SUMMARY": str(summary)}, bin_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls.read_text().splitlines() == ["mlops sync-alias --env prod", "mlops sync-alias --env dev"]
