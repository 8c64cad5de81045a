"""The release WorkflowTemplate, run here step by step as Argo would chain it.

Each `mlops` step of workflows/train-evaluate-register-deploy.yaml runs as a subprocess with the
args the template gives it, `{{...}}` filled the way Argo fills them (a task's `outputs.result` is
its stdout), the pipeline ConfigMap as its environment, and local stand-ins for the cluster: the
SQLite MLflow store, an S3 endpoint for MinIO, a bare git remote for GitHub, `mlops serve` for the
staging API. Declared departures from the template: the corpus is the small fixture package
(`data --source`, `train --batch-size 8`), the smoke test's URL is the local API, and ArgoCD's wait
steps (kubectl) are checked for the revision they would wait on instead of run.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import yaml

from mlops import registry, tracking
from mlops.settings import Settings
from services import MLOPS, ApiProcess, clone, git, gitops_remote, s3_server
from test_lifecycle import pass_gate
from test_workflows import DOCS, TEMPLATE, dag_order, templates

EXPRESSION = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")
CLUSTER_ENDPOINTS = ("MLFLOW_TRACKING_URI", "AWS_ENDPOINT_URL")  # replaced by the local stand-ins


class ArgoStandIn:
    """Fills `{{...}}` as Argo does and runs one `mlops` step; records each task's stdout as its result."""

    def __init__(self, env: dict[str, str], parameters: dict[str, str]):
        self.env, self.parameters, self.results = env, parameters, {}

    def fill(self, text: str, inputs: dict[str, str]) -> str:
        def value(match: re.Match) -> str:
            scope, _, name = match.group(1).rpartition(".")
            if scope == "workflow.parameters":
                return self.parameters[name]
            if scope == "inputs.parameters":
                return inputs[name]
            if scope == "workflow" and name == "name":
                return "train-evaluate-register-deploy-local"
            task = re.fullmatch(r"tasks\.([\w-]+)\.outputs", scope)
            assert task and name == "result", f"no stand-in for {{{{{match.group(1)}}}}}"
            return self.results[task.group(1)]
        return EXPRESSION.sub(value, text)

    def arguments(self, task: dict) -> tuple[dict, list[str]]:
        inputs = {p["name"]: self.fill(p["value"], {}) for p in task.get("arguments", {}).get("parameters", [])}
        container = templates()[task["template"]]["container"]
        return container, [self.fill(str(a), inputs) for a in container["args"]]

    def run(self, task: dict, argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
        done = subprocess.run([MLOPS, *argv], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=900)
        if done.returncode == 0:
            assert len(done.stdout.strip().splitlines()) <= 1, f"{task['name']}: stdout must be one value for Argo: {done.stdout!r}"
            self.results[task["name"]] = done.stdout.strip()
        return done


def override(name: str, argv: list[str], source: Path, api_url: str | None) -> list[str]:
    """The declared departures from the template (module docstring)."""
    if name == "data":
        return [*argv, "--source", str(source)]
    if name == "train":
        return [*argv, "--batch-size", "8"]
    if name == "smoke":
        return [api_url if arg.startswith("http://") else arg for arg in argv]
    return argv


def pipeline_environment(home: Path, natural_file: Path) -> dict[str, str]:
    config = next(d for d in DOCS if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "mlops-pipeline")
    env = {**os.environ, **{k: v for k, v in config["data"].items() if k not in CLUSTER_ENDPOINTS}}
    env.update(MLOPS_HOME=str(home), MLOPS_NATURAL_QUESTIONS=str(natural_file), MLOPS_NATURAL_DEV=str(natural_file), GIT_SHA="0" * 40)
    for key in ("MLFLOW_TRACKING_URI", "DATABASE_URL"):
        env.pop(key, None)
    return env


def test_the_release_workflow_runs_here_and_stops_at_a_failed_gate(tmp_path: Path, mini_package: Path, natural_file: Path):
    home = tmp_path / "home"
    remote = gitops_remote(tmp_path)
    repository = clone(remote, tmp_path / "repository")  # what the promote step's git artifact checks out
    parameters = {p["name"]: p["value"] for p in TEMPLATE["spec"]["arguments"]["parameters"]}
    parameters.update(release="v9.9.9", **{"image-tag": "v9.9.9"})
    tasks = dag_order()
    api = None
    with s3_server("models") as s3:
        argo = ArgoStandIn(pipeline_environment(home, natural_file), parameters)
        try:
            for task in tasks:
                container, argv = argo.arguments(task)
                if container.get("command") != ["mlops"]:  # ArgoCD's wait: the revision it would wait for
                    assert "{{" not in " ".join(argv)
                    if "sync.revision" in argv[-2]:
                        assert argv[-2] == f"--for=jsonpath={{.status.sync.revision}}={git(remote, 'rev-parse', 'main').strip()}"
                    continue
                if task["name"] == "smoke":
                    api = ApiProcess(None, home)  # the staging API, serving the champion deploy just crowned
                argv = override(task["name"], argv, mini_package, api.url if api else None)
                cwd = repository if task["template"] == "promote" else tmp_path
                done = argo.run(task, argv, cwd)
                if task["name"] == "evaluate":
                    # The untuned encoder is already perfect on the fixture's test split, so the real gate
                    # fails (exit 3, the reason as the last line): Argo stops the DAG there, since every
                    # later task depends on `.Succeeded`. To follow the rest of the chain, record what
                    # `mlops evaluate` records for a passing run.
                    assert done.returncode == 3 and "quality gate failed" in done.stderr.strip().splitlines()[-1]
                    assert_nothing_shipped(home, remote, s3)
                    pass_gate(Settings(home=home, tracking_uri=f"sqlite:///{home / 'mlflow.db'}"), argo.results["train"])
                    argo.results["evaluate"] = ""
                    continue
                assert done.returncode == 0, f"{task['name']} ({' '.join(argv)}): {done.stderr[-3000:]}"
        finally:
            if api:
                api.kill()
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="models")["Contents"]}

    results = argo.results
    assert re.fullmatch(r"[0-9a-f]{16}", results["data"]) and re.fullmatch(r"[0-9a-f]{32}", results["train"])
    assert results["register"] == "1" and results["publish"] == "s3://models/transformers-qa/1"
    assert {"transformers-qa/config.pbtxt", "transformers-qa/1/model.py", "transformers-qa/1/embeddings.npy"} <= keys
    # The commit landed on the remote: staging runs version 1 on the release's images, CI skipped.
    assert results["promote"] == git(remote, "rev-parse", "main").strip()
    message = git(remote, "log", "-1", "--format=%B", "main")
    assert message.startswith("promote(staging): transformers-qa version 1") and "[skip ci]" in message
    assert "argo workflow train-evaluate-register-deploy-local, release v9.9.9" in message
    shown = git(remote, "show", "main:gitops/envs/staging/values/images.yaml")
    assert yaml.safe_load(shown)["images"]["api"]["tag"] == "v9.9.9"
    assert results["smoke"] == ""  # progress goes to stderr; it passed (exit 0)
    client = tracking.configure(Settings(home=home, tracking_uri=f"sqlite:///{home / 'mlflow.db'}"))
    assert str(registry.by_alias(client, "transformers-qa", "staging").version) == "1"


def assert_nothing_shipped(home: Path, remote: Path, s3) -> None:
    client = tracking.configure(Settings(home=home, tracking_uri=f"sqlite:///{home / 'mlflow.db'}"))
    assert client.search_registered_models() == []
    assert "Contents" not in s3.list_objects_v2(Bucket="models")
    assert git(remote, "log", "--format=%s", "main").strip() == "seed"
