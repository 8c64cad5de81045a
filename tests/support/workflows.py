"""workflows/: its documents, the release WorkflowTemplate and its DAG in dependency order, and the check that a step's
argv is an `mlops` command line."""

from __future__ import annotations

import re

import click
import pytest
import typer
import yaml

from mlops.cli import app
from support.paths import ROOT

FILES = sorted((ROOT / "workflows").glob("*.yaml"))


DOCS = [doc for path in FILES for doc in yaml.safe_load_all(path.read_text()) if doc]


TASK_EXPRESSION = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")
TEMPLATE = next(d for d in DOCS if d["kind"] == "WorkflowTemplate" and d["metadata"]["name"] == "train-evaluate-register-deploy")


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


def command_name(argv: list[str]) -> str:
    """`mlops gitops wait ...` -> "gitops wait"; `mlops train ...` -> "train"."""
    return " ".join(argv[:2]) if argv[0] == "gitops" else argv[0]


def assert_parses(argv: list[str]) -> None:
    """``mlops <argv>`` names a command whose options exist and parse (Argo's {{...}} placeholders stand in for values)."""
    sub, words = typer.main.get_command(app), command_name(argv).split()
    for word in words:
        sub = sub.get_command(click.Context(sub), word)
        assert sub is not None, f"`mlops {' '.join(words)}` does not exist"
    values = [TASK_EXPRESSION.sub("7", a) for a in argv[len(words):]]
    try:
        sub.make_context(words[-1], values)
    except click.UsageError as e:
        pytest.fail(f"`mlops {' '.join(argv)}`: {e.format_message()}")
