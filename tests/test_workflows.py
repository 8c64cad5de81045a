"""workflows/: Argo resources validated strictly, and the release workflow runs the local pipeline's commands."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import click
import kubernetes_validate
import pytest
import typer
import yaml
from hera.workflows import models

from argo_models import strict_check, validate
from mlops.cli import app
from mlops.pipeline import CLUSTER_STEPS, STEPS

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted((ROOT / "workflows").glob("*.yaml"))
DOCS = [doc for path in FILES for doc in yaml.safe_load_all(path.read_text()) if doc]
KUBERNETES_VERSION = "1.31.0"
ARGO_KINDS = {"WorkflowTemplate", "CronWorkflow", "WorkflowEventBinding"}
TEMPLATE = next(d for d in DOCS if d["kind"] == "WorkflowTemplate" and d["metadata"]["name"] == "train-evaluate-register-deploy")
TASK_EXPRESSION = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")


def templates(doc: dict = TEMPLATE) -> dict[str, dict]:
    return {t["name"]: t for t in doc["spec"]["templates"]}


def dag_order(doc: dict = TEMPLATE) -> list[dict]:
    """The entrypoint's DAG tasks in dependency order (each after everything it depends on)."""
    tasks = {t["name"]: t for t in templates(doc)[doc["spec"]["entrypoint"]]["dag"]["tasks"]}
    ordered, done = [], set()
    while len(ordered) < len(tasks):
        ready = [t for name, t in tasks.items() if name not in done and set(dependencies(t)) <= done]
        assert ready, f"the DAG has a cycle or depends on an unknown task: {sorted(set(tasks) - done)}"
        ordered += ready
        done |= {t["name"] for t in ready}
    return ordered


def dependencies(task: dict) -> list[str]:
    return re.findall(r"([\w-]+)\.\w+", task.get("depends", ""))


def mlops_commands(doc: dict = TEMPLATE) -> list[list[str]]:
    """argv of every `mlops` container the release runs, in DAG order."""
    by_name = templates(doc)
    commands = []
    for task in dag_order(doc):
        container = by_name[task["template"]].get("container", {})
        if container.get("command") == ["mlops"]:
            commands.append([str(a) for a in container["args"]])
    return commands


def test_every_document_is_a_known_kind():
    assert FILES and {d["kind"] for d in DOCS} >= ARGO_KINDS
    for doc in DOCS:
        assert doc["metadata"].get("namespace") in {"argo", "argocd"}, doc["metadata"]["name"]


@pytest.mark.parametrize("doc", [d for d in DOCS if d["kind"] in ARGO_KINDS], ids=lambda d: d["metadata"]["name"])
def test_argo_resources_match_the_typed_models_strictly(doc: dict):
    validate(doc)


@pytest.mark.parametrize("doc", [d for d in DOCS if d["kind"] not in ARGO_KINDS], ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_built_in_kinds_pass_strict_kubernetes_schemas(doc: dict):
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_default_artifact_repository_is_a_valid_argo_artifact_repository():
    config = next(d for d in DOCS if d["metadata"]["name"] == "artifact-repositories")
    default = config["metadata"]["annotations"]["workflows.argoproj.io/default-artifact-repository"]
    repository = yaml.safe_load(config["data"][default])
    strict_check(models.ArtifactRepository, repository)
    assert repository["s3"]["accessKeySecret"]["name"] == "mlops-pipeline-s3"


@pytest.mark.parametrize(("path", "value", "problem"), [
    (("spec", "templates", 1, "retryStrategy", "retrypolicy"), "OnError", "retryStrategy.retrypolicy"),
    (("spec", "templates", 2, "container", "resource"), {}, "container.resource"),
    (("spec", "activeDeadline"), 10, "spec.activeDeadline"),
    (("spec", "templates", 0, "dag", "tasks", 1, "dependson"), "data", "tasks[1].dependson"),
])
def test_the_strict_check_rejects_unknown_fields(path: tuple, value, problem: str):
    broken = copy.deepcopy(TEMPLATE)
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValueError, match=re.escape(problem)):
        validate(broken)


def test_the_strict_check_rejects_wrong_types():
    broken = copy.deepcopy(TEMPLATE)
    broken["spec"]["templates"][0]["dag"]["tasks"] = "data"
    with pytest.raises(ValueError):
        validate(broken)


def test_the_release_runs_the_local_pipeline_commands_then_ships():
    """The cluster runs `mlops <step>` for exactly the stages `mlops pipeline` runs, in the same order."""
    assert [argv[0] for argv in mlops_commands()] == [*STEPS, *CLUSTER_STEPS]


def test_the_local_pipeline_runs_its_declared_steps(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from mlops import pipeline
    from mlops.settings import Settings

    for step in ("build_data", "train", "evaluate", "register_run", "deploy"):
        monkeypatch.setattr(pipeline, step, lambda *args, **kwargs: "1")
    lines: list[str] = []
    pipeline.run_pipeline(Settings(home=tmp_path, tracking_uri="sqlite://"), echo=lines.append)
    assert [line[4:] for line in lines if line.startswith("==> ")] == list(STEPS)


@pytest.mark.parametrize("argv", mlops_commands(), ids=lambda argv: argv[0])
def test_every_step_is_a_valid_mlops_command_line(argv: list[str]):
    """Each step's options exist and parse (Argo's {{...}} placeholders stand in for values)."""
    command = typer.main.get_command(app)
    sub = command.get_command(click.Context(command), argv[0])
    assert sub is not None, f"`mlops {argv[0]}` does not exist"
    values = [TASK_EXPRESSION.sub("7", a) for a in argv[1:]]
    try:
        sub.make_context(argv[0], values)
    except click.UsageError as e:
        pytest.fail(f"`mlops {' '.join(argv)}`: {e.format_message()}")


def test_nothing_runs_after_a_failed_or_skipped_step():
    """`depends: x` alone also fires when x was skipped (Argo); every edge must say x.Succeeded."""
    tasks = dag_order()
    for task in tasks[1:]:
        assert re.fullmatch(r"[\w-]+\.Succeeded( && [\w-]+\.Succeeded)*", task.get("depends", "")), task["name"]
    assert [t["name"] for t in tasks][:5] == list(STEPS)


def test_parameters_and_inputs_are_declared_where_they_are_used():
    spec = TEMPLATE["spec"]
    declared = {p["name"] for p in spec["arguments"]["parameters"]}
    by_name = templates()
    for template in spec["templates"]:
        inputs = {p["name"] for p in template.get("inputs", {}).get("parameters", [])}
        for expression in TASK_EXPRESSION.findall(yaml.safe_dump(template)):
            scope, _, name = expression.rpartition(".")
            if scope == "workflow.parameters":
                assert name in declared, f"{template['name']}: {expression}"
            elif scope == "inputs.parameters":
                assert name in inputs, f"{template['name']}: {expression}"
    for task in dag_order():
        given = {p["name"] for p in task.get("arguments", {}).get("parameters", [])}
        wanted = {p["name"] for p in by_name[task["template"]].get("inputs", {}).get("parameters", [])}
        assert given == wanted, task["name"]


def test_every_step_has_a_deadline_pinned_image_limits_and_no_privilege():
    for template in TEMPLATE["spec"]["templates"]:
        if "container" not in template:
            continue
        container = template["container"]
        assert template.get("activeDeadlineSeconds"), template["name"]
        image = container["image"]
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image
        assert container["resources"]["limits"], template["name"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, template["name"]
    assert TEMPLATE["spec"]["securityContext"]["runAsNonRoot"] is True
    assert TEMPLATE["spec"]["podGC"]["strategy"] and TEMPLATE["spec"]["activeDeadlineSeconds"]


def test_training_gets_the_gpus_it_runs_processes_on():
    train = templates()["train"]
    gpus = "{{workflow.parameters.gpus}}"
    assert train["container"]["resources"]["limits"]["nvidia.com/gpu"] == gpus
    args = train["container"]["args"]
    assert args[args.index("--nproc-per-node") + 1] == gpus


def test_the_gate_is_never_retried_but_transient_errors_are():
    """A failed gate exits 3 (a failure, not an error): OnError retries pod-level errors only."""
    by_name = templates()
    assert by_name["evaluate"]["retryStrategy"]["retryPolicy"] == "OnError"
    assert by_name["evaluate"]["container"]["terminationMessagePolicy"] == "FallbackToLogsOnError"
    for name in STEPS:
        assert by_name[name]["retryStrategy"]["backoff"]["duration"], name


def test_the_promotion_commit_targets_staging_skips_ci_and_is_waited_for():
    promote = templates()["promote"]
    args = promote["container"]["args"]
    assert args[args.index("--env") + 1] == "staging" and "--skip-ci" in args
    assert promote["inputs"]["artifacts"][0]["git"]["sshPrivateKeySecret"]["name"] == "gitops-deploy-key"
    waits = [t for t in dag_order() if t["template"] == "wait-for-argocd"]
    conditions = [t["arguments"]["parameters"][0]["value"] for t in waits]
    assert conditions == ["jsonpath={.status.sync.revision}={{tasks.promote.outputs.result}}",
                          "jsonpath={.status.health.status}=Healthy"]


def test_the_schedule_and_the_feedback_alert_run_the_release_template():
    cron = next(d for d in DOCS if d["kind"] == "CronWorkflow")
    binding = next(d for d in DOCS if d["kind"] == "WorkflowEventBinding")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    declared = {p["name"] for p in TEMPLATE["spec"]["arguments"]["parameters"]}
    for ref, arguments in ((cron["spec"]["workflowSpec"]["workflowTemplateRef"], cron["spec"]["workflowSpec"]["arguments"]),
                           (binding["spec"]["submit"]["workflowTemplateRef"], binding["spec"]["submit"]["arguments"])):
        assert ref["name"] == TEMPLATE["metadata"]["name"]
        assert {p["name"] for p in arguments["parameters"]} <= declared
    alerts = yaml.safe_load((ROOT / "gitops/charts/transformers-qa/files/prometheus/alerts.yaml").read_text())
    names = {rule["alert"] for group in alerts["groups"] for rule in group["rules"]}
    alert = re.search(r'alertname == "(\w+)"', binding["spec"]["event"]["selector"]).group(1)
    assert alert in names  # the binding listens for an alert the service really raises
