"""workflows/: Argo resources validated strictly, and the release workflow runs the local pipeline's commands."""

from __future__ import annotations

import copy
import inspect
import json
import re
import typing
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from hera.workflows import models

from mlops.core.errors import PROCESSES_LOST
from mlops.lifecycle.deploy import deploy
from mlops.pipeline import CLUSTER_STEPS, STEPS
from mlops.training.config import TrainConfig
from support.argo_models import strict_check, validate
from support.expr_lang import evaluate
from support.gitops import application
from support.paths import ROOT
from support.workflows import DOCS, FILES, TASK_EXPRESSION, TEMPLATE, assert_parses, command_name, dag_order, templates

KUBERNETES_VERSION = "1.31.0"
ARGO_KINDS = {"WorkflowTemplate", "CronWorkflow", "WorkflowEventBinding"}


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
    assert [command_name(argv) for argv in mlops_commands()] == [*STEPS, *CLUSTER_STEPS]


def test_the_local_pipeline_runs_its_declared_steps(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from mlops import pipeline
    from mlops.core.settings import Settings

    calls: dict[str, dict] = {}

    def stand_in(step: str):
        def run(*args, **kwargs):
            calls[step] = kwargs
            return "1"
        return run

    for step in ("build_data", "train", "evaluate", "register_run", "deploy"):
        monkeypatch.setattr(pipeline, step, stand_in(step))
    lines: list[str] = []
    pipeline.run_pipeline(Settings(home=tmp_path, tracking_uri="sqlite://"), echo=lines.append)
    assert [line[4:] for line in lines if line.startswith("==> ")] == list(STEPS)
    # locally the deploy step is the serving environment: it moves `champion` (deploy's default), unlike the cluster's
    assert calls["deploy"] == {}
    assert inspect.signature(deploy).parameters["move_champion"].default is True


@pytest.mark.parametrize("argv", [*mlops_commands(), templates()["search"]["container"]["args"]], ids=lambda argv: argv[0])
def test_every_step_is_a_valid_mlops_command_line(argv: list[str]):
    """Each step's options exist and parse (Argo's {{...}} placeholders stand in for values); the search too."""
    assert_parses([str(a) for a in argv])


def test_nothing_runs_after_a_failed_or_skipped_step():
    """`depends: x` alone also fires when x was skipped (Argo); every edge must say x.Succeeded."""
    tasks = dag_order()
    for task in tasks[1:]:
        assert re.fullmatch(r"[\w-]+\.Succeeded( && [\w-]+\.Succeeded)*", task.get("depends", "")), task["name"]
    assert [t["name"] for t in tasks][1:6] == list(STEPS)  # after the step that picks the images


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
        container = template.get("container") or template.get("script")
        if container is None:
            continue
        assert template.get("activeDeadlineSeconds"), template["name"]
        image = container["image"]
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image
        assert container["resources"]["limits"], template["name"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, template["name"]
    assert TEMPLATE["spec"]["securityContext"]["runAsNonRoot"] is True
    assert TEMPLATE["spec"]["podGC"]["strategy"] and TEMPLATE["spec"]["activeDeadlineSeconds"]


def test_training_gets_the_gpus_it_runs_processes_on():
    """The GPU request comes through podSpecPatch (a parameter is not a quantity: the full CRD schema and the
    controller refuse it in `resources`), into the container Argo names `main`."""
    train = templates()["train"]
    gpus = "{{workflow.parameters.gpus}}"
    assert "nvidia.com/gpu" not in train["container"]["resources"]["limits"]
    patch = json.loads(train["podSpecPatch"])
    (main,) = patch["containers"]
    assert main["name"] == "main" and main["resources"] == {"requests": {"nvidia.com/gpu": gpus}, "limits": {"nvidia.com/gpu": gpus}}
    args = train["container"]["args"]
    assert args[args.index("--nproc-per-node") + 1] == gpus
    # staging's time-sliced GPU refuses requests above 1 (failRequestsGreaterThanOne): the default, and the reason, say so
    assert {p["name"]: p["value"] for p in TEMPLATE["spec"]["arguments"]["parameters"]}["gpus"] == "1"
    text = (ROOT / "workflows/train-evaluate-register-deploy.yaml").read_text()
    assert "failRequestsGreaterThanOne" in text[:text.index("podSpecPatch: >-")][-600:]


def test_training_takes_the_strategy_the_trainer_knows():
    """The workflow's strategy choices are exactly those `mlops train --strategy` accepts, and reach the train step."""
    strategy = {p["name"]: p for p in TEMPLATE["spec"]["arguments"]["parameters"]}["strategy"]
    assert tuple(strategy["enum"]) == typing.get_args(TrainConfig.model_fields["strategy"].annotation)
    assert strategy["value"] == TrainConfig().strategy
    args = templates()["train"]["container"]["args"]
    assert args[args.index("--strategy") + 1] == "{{workflow.parameters.strategy}}"


def test_the_gate_is_never_retried_but_transient_errors_are():
    """A failed gate exits 3 (a failure, not an error): OnError retries pod-level errors only."""
    by_name = templates()
    assert by_name["evaluate"]["retryStrategy"]["retryPolicy"] == "OnError"
    assert by_name["evaluate"]["container"]["terminationMessagePolicy"] == "FallbackToLogsOnError"
    for name in STEPS:
        assert by_name[name]["retryStrategy"]["backoff"]["duration"], name


@pytest.mark.parametrize(("status", "exit_code", "retried"), [
    ("Error", "-1", True),     # Argo's error: the pod deleted, the node lost (no exit code: Argo's "-1")
    ("Failed", "137", True),   # killed: out of memory
    ("Failed", "143", True),   # the node's graceful shutdown (SIGTERM)
    ("Failed", str(PROCESSES_LOST), True),  # a worker under torchrun killed
    ("Failed", "1", False),    # the command's own error: the same again
    ("Failed", "2", False),    # bad usage
])
def test_train_is_retried_when_its_processes_are_lost_and_never_for_its_own_error(status: str, exit_code: str, retried: bool):
    """The train step resumes from its checkpoint on a retry, so every way of losing its processes is retried; the
    expression is evaluated with Argo's lastRetry variables (workflow/controller/operator.go,
    buildRetryStrategyLocalScope: exitCode "-1" when there is none, status the node phase)."""
    strategy = templates()["train"]["retryStrategy"]
    assert strategy["retryPolicy"] == "Always"  # OnError would miss the OOM kill and the shutdown, both Failed pods
    names = {"lastRetry.status": status, "lastRetry.exitCode": exit_code}
    assert evaluate(strategy["expression"], names, {"asInt": int}) is retried
    args = templates()["train"]["container"]["args"]
    assert "--resume" in args and args[args.index("--resume-key") + 1] == "{{workflow.uid}}"
    assert args[args.index("--precision") + 1] == "auto"


def test_the_promotion_commit_targets_staging_skips_ci_and_is_waited_for():
    promote = templates()["promote"]
    args = promote["container"]["args"]
    assert args[args.index("--env") + 1] == "staging" and "--skip-ci" in args
    assert args[args.index("--image-tag") + 1] == "{{workflow.parameters.image-tag}}"  # empty when retraining: images stay
    assert promote["inputs"]["artifacts"][0]["git"]["sshPrivateKeySecret"]["name"] == "gitops-deploy-key"
    [wait] = [t for t in dag_order() if t["template"] == "wait-for-argocd"]
    assert {p["name"]: p["value"] for p in wait["arguments"]["parameters"]}["commit"] == "{{tasks.promote.outputs.result}}"
    container = templates()["wait-for-argocd"]["container"]
    args = container["args"]
    assert args[:2] == ["gitops", "wait"] and args[args.index("--commit") + 1] == "{{inputs.parameters.commit}}"
    assert args[args.index("--app") + 1] == "transformers-qa-staging" and args[args.index("--namespace") + 1] == "argocd"
    # it decides containment in a clone of the repository, fetched with the deploy key
    assert container["workingDir"] == templates()["wait-for-argocd"]["inputs"]["artifacts"][0]["path"]


def test_champion_moves_only_after_the_staging_smoke_test():
    deploy = templates()["deploy"]["container"]["args"]
    assert "--no-champion" in deploy
    tasks = {t["name"]: t for t in dag_order()}
    assert tasks["champion"]["depends"] == "smoke.Succeeded" and tasks["smoke"]["depends"] == "argocd.Succeeded"
    assert templates()["champion"]["container"]["args"][:2] == ["champion", "--version"]
    assert [t["name"] for t in dag_order()][-1] == "champion"


def test_every_mlops_step_runs_the_images_the_first_step_picked():
    """A release passes its tag; retraining passes none and runs what staging runs (never a tag that was not built)."""
    parameters = {p["name"]: p["value"] for p in TEMPLATE["spec"]["arguments"]["parameters"]}
    assert parameters["image-tag"] == ""
    by_name = templates()
    for task in dag_order():
        container = by_name[task["template"]].get("container")
        if container is None:
            continue
        assert container["image"] == "ghcr.io/transformers-qa/trainer:{{inputs.parameters.image-tag}}", task["name"]
        given = {p["name"]: p["value"] for p in task["arguments"]["parameters"]}
        assert given["image-tag"] == "{{tasks.image-tag.outputs.result}}", task["name"]
    assert dag_order()[0]["name"] == "image-tag" and "depends" not in dag_order()[0]
    for doc in DOCS:
        assert "0.1.0" not in yaml.safe_dump(doc), doc["metadata"]["name"]


def test_the_image_step_runs_in_the_trainer_base_image():
    """The step that picks the trainer image cannot run in it: it runs in the trainer's base image (python:3.11.11-slim-bookworm,
    published by docker-library/official-images, library/python at 7afdc4b5), with the standard library only."""
    script = templates()["image-tag"]["script"]
    base = re.search(r"^FROM (\S+)", (ROOT / "images/trainer/Dockerfile").read_text(), re.MULTILINE).group(1)
    assert script["image"] == base == "python:3.11.11-slim-bookworm"
    imported = set(re.findall(r"^import (\w+)", script["source"], re.MULTILINE))
    assert imported <= {"os", "re", "sys"}


def test_every_event_binding_parameter_is_an_event_expression():
    """Argo v4.0.4 (server/event/dispatch/operation.go) refuses a binding parameter without valueFrom.event as malformed."""
    binding = next(d for d in DOCS if d["kind"] == "WorkflowEventBinding")
    for parameter in binding["spec"]["submit"]["arguments"]["parameters"]:
        assert set(parameter) == {"name", "valueFrom"} and parameter["valueFrom"]["event"], parameter["name"]


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


# Alertmanager submits retraining through the event endpoint with its own service-account token.

def rbac(kind: str, name: str) -> dict:
    return next(d for d in DOCS if d["kind"] == kind and d["metadata"]["name"] == name)


def test_the_event_role_allows_exactly_what_the_event_endpoint_does():
    """argo-workflows v4.0.4 server/event: list WorkflowEventBindings, get the WorkflowTemplate, create the Workflow."""
    rules = {(group, resource, verb) for rule in rbac("Role", "submit-on-event")["rules"] for group in rule["apiGroups"]
             for resource in rule["resources"] for verb in rule["verbs"]}
    assert rules == {("argoproj.io", "workfloweventbindings", "list"), ("argoproj.io", "workflowtemplates", "get"),
                     ("argoproj.io", "workflows", "create")}
    binding = rbac("RoleBinding", "alertmanager-submit-on-event")
    assert binding["roleRef"]["name"] == "submit-on-event" and binding["metadata"]["namespace"] == "argo"
    assert not [d for d in DOCS if d["kind"] == "Secret" and "alertmanager" in yaml.safe_dump(d)]  # no copied token


def test_the_event_binding_names_alertmanagers_own_service_account():
    """As staging renders the upstream chart with our values (tests/support/gitops.py): the account the Alertmanager pods run
    as, with its token mounted."""
    result = application("staging", "platform-kube-prometheus-stack-staging")
    if result.missing:
        pytest.skip(result.missing)
    [alertmanager] = [d for d in result.documents if d["kind"] == "Alertmanager"]
    account = alertmanager["spec"]["serviceAccountName"]
    [service_account] = [d for d in result.documents if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == account]
    assert alertmanager["spec"].get("automountServiceAccountToken", True) and service_account.get("automountServiceAccountToken", True)
    subjects = rbac("RoleBinding", "alertmanager-submit-on-event")["subjects"]
    assert subjects == [{"kind": "ServiceAccount", "name": account, "namespace": "monitoring"}]


def test_the_pipeline_may_read_only_the_applications_it_waits_for():
    assert TEMPLATE["spec"]["serviceAccountName"] == "mlops-pipeline"
    role = rbac("Role", "read-applications")
    assert role["metadata"]["namespace"] == "argocd"
    assert role["rules"] == [{"apiGroups": ["argoproj.io"], "resources": ["applications"], "verbs": ["get"]}]
    assert rbac("RoleBinding", "mlops-pipeline-read-applications")["subjects"] == [
        {"kind": "ServiceAccount", "name": "mlops-pipeline", "namespace": "argo"}]
