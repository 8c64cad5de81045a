"""Validate rendered manifests the way the API server would, offline and strictly.

- Built-in kinds: kubernetes-validate's schemas of the cluster's Kubernetes version, strict (unknown
  fields rejected).
- Custom resources: the ``openAPIV3Schema`` of their CustomResourceDefinition (the CRDs the rendered
  charts install, plus the ones the bootstrap installs), turned into JSON Schema with the semantics of
  a Kubernetes structural schema: ``x-kubernetes-int-or-string``, ``x-kubernetes-preserve-unknown-fields``,
  ``x-kubernetes-embedded-resource``, ``nullable``, patterns, formats (date-time, ...); fields the schema does not declare are
  rejected (the API server would prune them silently, so a typo would vanish without an error).
  ``metadata`` is checked against Kubernetes' own ObjectMeta schema.
"""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

from mlops.gitops.charts import find_artifact, find_chart
from mlops.gitops.render import KUBERNETES_VERSION, Rendered, load_all, role_defaults, sources

SCHEMA_VERSION = ".".join(KUBERNETES_VERSION.split(".")[:2]) + ".0"  # kubernetes-validate ships x.y.0 schemas


def crd_documents(paths: Iterable[Path]) -> list[dict]:
    """The CustomResourceDefinitions in YAML files (a folder of CRDs, an install manifest)."""
    return [doc for path in paths for doc in load_all(path.read_text(encoding="utf-8"))
            if doc.get("kind") == "CustomResourceDefinition"]


def reference_crds(root: Path, rendered: list[Rendered]) -> list[dict]:
    """CRDs that no rendered chart carries in full, from the chart cache at the versions in use:

    - ArgoCD's (Application, AppProject, ApplicationSet), installed by the bootstrap at its pinned version;
    - Argo Workflows' full schemas at the chart's appVersion: the chart installs minimal CRDs that keep
      any field (``x-kubernetes-preserve-unknown-fields``), and the controller ignores what its types
      do not know, so only the full schema tells a typo from a field.
    """
    argocd = find_artifact("argo-cd", role_defaults(root)["argocd_version"])
    paths = sorted((argocd / "manifests" / "crds").glob("*-crd.yaml"))
    for result in rendered:
        for source in sources(result.application):
            if source.get("chart") == "argo-workflows":
                chart = find_chart("argo-workflows", str(source["targetRevision"]), source["repoURL"])
                app_version = yaml.safe_load((chart / "Chart.yaml").read_text(encoding="utf-8"))["appVersion"]
                full = find_artifact("argo-workflows-manifests", app_version) / "manifests" / "base" / "crds" / "full"
                paths += sorted(full.glob("argoproj.io_*.yaml"))
    return crd_documents(paths)


FORMATS = copy.deepcopy(jsonschema.Draft7Validator.FORMAT_CHECKER)


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    """RFC 3339, as the API server reads `format: date-time`."""
    return not isinstance(value, str) or datetime.fromisoformat(value.replace("Z", "+00:00")) is not None


@FORMATS.checks("int32")
def _int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@FORMATS.checks("byte", raises=binascii.Error)
def _byte(value: object) -> bool:
    return not isinstance(value, str) or base64.b64decode(value, validate=True) is not None


def _strict(node: object) -> object:
    """A CRD's structural schema as JSON Schema that rejects undeclared fields."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    schema = {key: _strict(value) for key, value in node.items() if key != "description" or not isinstance(value, str)}
    if schema.pop("x-kubernetes-int-or-string", False):
        schema.pop("type", None)
        schema.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    preserve = schema.pop("x-kubernetes-preserve-unknown-fields", False)
    if schema.pop("x-kubernetes-embedded-resource", False):
        # An embedded object always may carry apiVersion, kind and metadata.
        props = schema.setdefault("properties", {})
        for field in ("apiVersion", "kind"):
            props.setdefault(field, {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    if schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema and not preserve:
        schema["additionalProperties"] = False
    if schema.pop("nullable", False) and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    for key in [k for k in schema if k.startswith("x-kubernetes-")]:
        schema.pop(key)  # list types, map keys, validations (CEL) are not checked here
    return schema


class Schemas:
    """JSON Schemas of the custom resources, by (apiVersion, kind), from CRDs (a later CRD of the same kind wins)."""

    def __init__(self, crds: Iterable[dict]) -> None:
        self.by_kind: dict[tuple[str, str], dict] = {}
        for crd in crds:
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = version.get("schema", {}).get("openAPIV3Schema")
                if version.get("served", True) and schema:
                    self.by_kind[(f"{group}/{version['name']}", kind)] = _strict(copy.deepcopy(schema))

    def knows(self, doc: dict) -> bool:
        return (doc.get("apiVersion"), doc.get("kind")) in self.by_kind

    def problems(self, doc: dict) -> list[str]:
        schema = self.by_kind[(doc["apiVersion"], doc["kind"])]
        body = {key: value for key, value in doc.items() if key != "metadata"}
        object_schema = {**schema, "properties": {**schema.get("properties", {}), "metadata": {}}}
        validator = jsonschema.Draft7Validator(object_schema, format_checker=FORMATS)
        found = [_where(e) for e in validator.iter_errors({**body, "metadata": {}})]
        found += metadata_problems(doc.get("metadata", {}))
        return sorted(found)


def metadata_problems(metadata: object) -> list[str]:
    """ObjectMeta checked by kubernetes-validate itself: as the metadata of an otherwise empty ConfigMap."""
    return [f"metadata{p.removeprefix('.metadata')}" for p in built_in_problems({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata})]


def _where(error: jsonschema.ValidationError) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"{path or '.'}: {error.message}"


def built_in_problems(doc: dict) -> list[str]:
    try:
        kubernetes_validate.validate(doc, SCHEMA_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path)
        return [f"{path or '.'}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"no schema for {doc.get('apiVersion')} {doc.get('kind')} in Kubernetes {SCHEMA_VERSION} "
                "and no CustomResourceDefinition for it"]
    return []


def problems(docs: Iterable[dict], schemas: Schemas) -> list[str]:
    """Every problem, as '<Kind>/<name>: <path>: <message>'; [] when all documents are valid."""
    found = []
    for doc in docs:
        label = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        where = schemas.problems(doc) if schemas.knows(doc) else built_in_problems(doc)
        found += [f"{label}: {problem}" for problem in where]
    return found


def validate_environment(root: Path, rendered: list[Rendered]) -> dict[str, list[str]]:
    """Problems per Application (every rendered object checked); an Application that could not be
    rendered is left out (``Rendered.missing`` says why)."""
    crds = [doc for result in rendered for doc in result.documents if doc.get("kind") == "CustomResourceDefinition"]
    schemas = Schemas(crds + reference_crds(root, rendered))
    return {result.name: problems(result.documents, schemas) for result in rendered if not result.missing}
