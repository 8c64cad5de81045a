"""Strict validation of Argo Workflows resources against hera's typed models of the Argo API.

hera's pydantic models check types but ignore unknown keys, and Kubernetes would silently drop a
misspelled field (`retrypolicy`, `activeDeadline`), so the walk below rejects every key that the
model at that position does not declare.
"""

from __future__ import annotations

import types
import typing

from hera.workflows import models
from pydantic import BaseModel, RootModel

KINDS: dict[str, type[BaseModel]] = {
    "WorkflowTemplate": models.WorkflowTemplate,
    "CronWorkflow": models.CronWorkflow,
    "WorkflowEventBinding": models.WorkflowEventBinding,
    "Workflow": models.Workflow,
}


def _models_in(annotation) -> list[type[BaseModel]]:
    """The pydantic model classes an annotation can hold (through Optional, Annotated, list, dict)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [] if issubclass(annotation, RootModel) else [annotation]
    found = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def _is_mapping(annotation) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (dict, typing.Dict):  # noqa: UP006 - hera's annotations use both spellings
        return True
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        return any(_is_mapping(arg) for arg in typing.get_args(annotation))
    return False


def unknown_keys(model: type[BaseModel], data, path: str = "") -> list[str]:
    """Paths of keys in ``data`` that ``model`` (recursively) does not declare."""
    if not isinstance(data, dict):
        return []
    fields = {(field.alias or name): field for name, field in model.model_fields.items()}
    problems = []
    for key, value in data.items():
        here = f"{path}.{key}" if path else key
        field = fields.get(key)
        if field is None:
            problems.append(here)
            continue
        inner = _models_in(field.annotation)
        if not inner:
            continue
        values = value.values() if _is_mapping(field.annotation) and isinstance(value, dict) else (
            value if isinstance(value, list) else [value])
        for index, item in enumerate(values):
            where = f"{here}[{index}]" if isinstance(value, list) else here
            problems += unknown_keys(inner[0], item, where)
    return problems


def validate(doc: dict) -> None:
    """Raise ValueError naming the first problem: an unknown kind, an unknown key, or a type error."""
    model = KINDS.get(doc.get("kind"))
    if model is None:
        raise ValueError(f"not an Argo Workflows kind: {doc.get('kind')!r}")
    strict_check(model, doc)


def strict_check(model: type[BaseModel], data: dict) -> None:
    extra = unknown_keys(model, data)
    if extra:
        raise ValueError(f"unknown field(s) for {model.__name__}: {', '.join(extra)}")
    model.model_validate(data)  # types, required fields, enums
