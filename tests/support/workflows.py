"""workflows/: its documents, the release WorkflowTemplate and its DAG in dependency order."""

from __future__ import annotations

import re

import yaml

from support.paths import ROOT

FILES = sorted((ROOT / "workflows").glob("*.yaml"))


DOCS = [doc for path in FILES for doc in yaml.safe_load_all(path.read_text()) if doc]


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
