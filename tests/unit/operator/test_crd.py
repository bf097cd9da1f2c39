"""Generated files match their source of truth: the CRD, its chart copy, README's reference."""

from __future__ import annotations

import pathlib
import subprocess
import sys
from typing import Any

import yaml

from kubesft_api.sftjob import SFTJobSpec
from kubesft_operator.crd import CRD_PATHS, build_crd, render_crd_yaml
from kubesft_operator.spec_changes import MUTABLE_FIELDS

ROOT = pathlib.Path(__file__).resolve().parents[3]


def test_committed_crd_and_chart_copy_match_the_models() -> None:
    expected = render_crd_yaml()
    for path in CRD_PATHS:
        assert path.read_text() == expected, f"{path} is stale: run `make crds`"


def _spec_schema() -> dict[str, Any]:
    schema: dict[str, Any] = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    return schema["spec"]  # type: ignore[no-any-return]


def test_crd_schema_covers_every_spec_field() -> None:
    schema = _spec_schema()

    def walk(model: type, node: dict, path: str) -> None:
        props = node["properties"]
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            alias = field.alias or name
            assert alias in props, f"{path}.{alias} missing from the CRD"
            assert props[alias].get("description"), f"{path}.{alias} has no description"
            annotation = field.annotation
            sub = getattr(annotation, "model_fields", None)
            if sub is not None:
                walk(annotation, props[alias], f"{path}.{alias}")

    walk(SFTJobSpec, schema, "spec")


def test_every_spec_field_is_described_and_bounded() -> None:
    """Descriptions for `kubectl explain`, and bounds so the API server refuses absurd values."""
    schema = _spec_schema()
    problems: list[str] = []

    def walk(node: dict, path: str, described: bool = True) -> None:
        if described and not node.get("description"):
            problems.append(f"{path}: no description")
        if node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node:
            return  # PodSpec fragments (affinity, tolerations) and extraArgs: checked where used
        kind = node.get("type")
        if kind in ("integer", "number") and ("minimum" not in node or "maximum" not in node):
            problems.append(f"{path}: no minimum or maximum")
        elif kind == "string" and not {"maxLength", "pattern", "enum"} & node.keys():
            problems.append(f"{path}: no length, pattern or choices")
        elif kind == "array":
            if "maxItems" not in node:
                problems.append(f"{path}: no maxItems")
            walk(node["items"], f"{path}[]", described=False)
        elif kind == "object" and "additionalProperties" in node:
            if "maxProperties" not in node:
                problems.append(f"{path}: no maxProperties")
            walk(node["additionalProperties"], f"{path}{{}}", described=False)
        for name, child in (node.get("properties") or {}).items():
            walk(child, f"{path}.{name}")

    walk(schema, "spec")
    assert not problems, "\n".join(problems)


JSON_SCHEMA_PROPS = {
    "description", "type", "format", "title", "default", "maximum", "exclusiveMaximum", "minimum",
    "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems",
    "multipleOf", "enum", "maxProperties", "minProperties", "required", "items", "allOf", "oneOf",
    "anyOf", "not", "properties", "additionalProperties", "dependencies", "additionalItems",
    "definitions", "externalDocs", "example", "nullable", "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource", "x-kubernetes-int-or-string", "x-kubernetes-list-map-keys",
    "x-kubernetes-list-type", "x-kubernetes-map-type", "x-kubernetes-validations",
}  # fmt: skip


def test_crd_is_structural() -> None:
    crd = build_crd()
    version = crd["spec"]["versions"][0]
    assert crd["spec"]["names"]["shortNames"] == ["sft"]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"] if "priority" not in c] == [
        "Phase",
        "Progress",
        "Loss",
        "Age",
    ]
    loss = next(c for c in version["additionalPrinterColumns"] if c["name"] == "Loss")
    # A printer column cannot format a number, so the operator writes the loss as text.
    assert loss == {
        "name": "Loss",
        "type": "string",
        "jsonPath": ".status.lossText",
        "description": "training loss",
    }
    assert "lossText" in version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]

    def check(node: dict, path: str) -> None:
        assert "$ref" not in node and "anyOf" not in node, path
        # Keywords Kubernetes' JSONSchemaProps has: the API server refuses a CRD with any other.
        unknown = set(node) - JSON_SCHEMA_PROPS
        assert not unknown, f"{path}: {sorted(unknown)} are not OpenAPI schema fields Kubernetes knows"
        if node.get("x-kubernetes-preserve-unknown-fields") is not True:
            assert "type" in node, f"{path} has no type"
        if "properties" in node:
            assert "additionalProperties" not in node, path
        for name, sub in node.get("properties", {}).items():
            check(sub, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            check(node["items"], f"{path}[]")

    check(version["schema"]["openAPIV3Schema"], "")


def test_spec_objects_keep_undeclared_fields_for_the_webhook_to_name() -> None:
    """Pruned, a misspelt field sent with ``kubectl --validate=false`` would vanish silently."""
    properties = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    pruned: list[str] = []

    def walk(node: dict, path: str) -> list[str]:
        found = []
        if "properties" in node:
            found.append(path)
            if node.get("x-kubernetes-preserve-unknown-fields") is not True:
                pruned.append(path)
        for name, sub in node.get("properties", {}).items():
            found += walk(sub, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            found += walk(node["items"], f"{path}[]")
        return found

    objects = walk(properties["spec"], "spec")
    assert {"spec", "spec.training", "spec.lora", "spec.dataset.mixture[]"} <= set(objects)
    assert not pruned, f"these spec objects drop unknown fields: {pruned}"
    pruned.clear()
    walk(properties["status"], "status")
    assert pruned, "the status is written by the operator alone and keeps pruning"


def test_committed_crd_yaml_parses() -> None:
    for path in CRD_PATHS:
        assert yaml.safe_load(path.read_text())["kind"] == "CustomResourceDefinition"


def test_readme_reference_is_current() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "hack/generate.py"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    text = (ROOT / "README.md").read_text()
    assert "`spec.training.assistantOnlyLoss`" in text


def test_a_started_jobs_spec_is_frozen_by_root_transition_rules_except_the_mutable_fields() -> None:
    root = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    frozen = {rule["fieldPath"] for rule in root["x-kubernetes-validations"]}
    assert {".spec.model", ".spec.dataset", ".spec.training", ".spec.resources"} <= frozen
    assert {".spec.runPolicy.backoffLimit", ".spec.runPolicy.queueName"} <= frozen
    mutable = {f".spec.{section}.{field}" for section, field in MUTABLE_FIELDS}
    assert not mutable & frozen and ".spec.runPolicy" not in frozen
    for rule in root["x-kubernetes-validations"]:
        assert "oldSelf.status.phase in ['Pending', 'Validating', 'Running', 'Suspended']" in rule["rule"]
