"""Generates the SFTJob CustomResourceDefinition from the spec and status models.

``python -m kubesft_operator.crd`` writes ``crds/sftjob.yaml`` and the chart's copy;
``--check`` fails when either differs from what the models generate.
"""

from __future__ import annotations

import copy
import pathlib
import sys
from typing import Any

import yaml

from kubesft_api.sftjob import GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION, SFTJobSpec
from kubesft_api.status import SFTJobStatus
from kubesft_operator.frozen_spec import frozen_spec_rules

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CRD_PATHS = (REPO_ROOT / "crds/sftjob.yaml", REPO_ROOT / "charts/kubesft/crds/sftjob.yaml")
HEADER = "# Generated from the models in api/kubesft_api/ by `make crds`. Do not edit.\n"

# propertyNames (the allowed keys of a map, e.g. dataset.roles) is JSON Schema that Kubernetes'
# OpenAPI schema lacks; the API server refuses a CRD that carries it, so the webhook checks keys.
_DROP = {"title", "additionalProperties", "$defs", "propertyNames"}
_PRINTER_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {
        "name": "Progress",
        "type": "string",
        "jsonPath": ".status.progressText",
        "description": "step/total (percent)",
    },
    {"name": "Loss", "type": "string", "jsonPath": ".status.lossText", "description": "training loss"},
    {
        "name": "Stage",
        "type": "string",
        "jsonPath": ".status.stage",
        "description": "what the job does now",
        "priority": 1,
    },
    {"name": "Restarts", "type": "integer", "jsonPath": ".status.restarts", "priority": 1},
    {"name": "ETA", "type": "string", "jsonPath": ".status.etaText", "priority": 1},
    {"name": "Checkpoint", "type": "string", "jsonPath": ".status.latestCheckpoint", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    """Rewrite pydantic's JSON Schema into a Kubernetes structural OpenAPI v3 schema."""
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**copy.deepcopy(target), **node}
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express a union of {options} structurally")
        node = {**_structural(options[0], defs), **node, "nullable": True}
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(bound), (int, float)) and not isinstance(node.get(bound), bool):
            node[plain] = node.pop(bound)
            node[bound] = True
    # Kubernetes 1.20 refuses an empty-string default ("must be of type string: null").
    if node.get("default", "absent") in (None, ""):
        node.pop("default")
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    additional = node.get("additionalProperties")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = _structural(value, defs)
        else:
            out[key] = value
    if out.get("type") == "object" and "properties" not in out and not preserve:
        if isinstance(additional, dict) and additional:
            out["additionalProperties"] = _structural(additional, defs)
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True
    if "type" not in out and not preserve:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _keep_unknown_fields(node: dict[str, Any]) -> None:
    """Mark every object of the spec with declared fields to keep the fields it does not declare.

    The API server would otherwise drop a misspelt field silently when the client asks for no
    strict validation (``kubectl --validate=false``), and the job would run with the default.
    Kept, it reaches the webhook, or without one the operator, which refuse it by name.
    """
    if node.get("type") == "object" and "properties" in node:
        node["x-kubernetes-preserve-unknown-fields"] = True
    for child in [*node.get("properties", {}).values(), node.get("items"), node.get("additionalProperties")]:
        if isinstance(child, dict):
            _keep_unknown_fields(child)


def _openapi(model: type[Any], mode: str) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode=mode)
    result: dict[str, Any] = _structural(schema, schema.get("$defs", {}))
    return result


def build_crd() -> dict[str, Any]:
    """The CRD as a dict, ready for YAML."""
    status = _openapi(SFTJobStatus, "serialization")
    spec = _openapi(SFTJobSpec, "validation")
    _keep_unknown_fields(spec)
    spec["description"] = "What to fine-tune, on which data, how, and where the results go."
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
                "categories": ["all", "kubesft"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": _PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A supervised fine-tuning run of a language model with TRL.",
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                            "required": ["spec"],
                            "x-kubernetes-validations": frozen_spec_rules(),
                        }
                    },
                }
            ],
        },
    }


def render_crd_yaml() -> str:
    return HEADER + yaml.safe_dump(build_crd(), sort_keys=False, width=100, allow_unicode=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = render_crd_yaml()
    if "--check" in args:
        stale = [p for p in CRD_PATHS if not p.exists() or p.read_text() != text]
        for stale_path in stale:
            print(f"{stale_path} differs from the models; run `make crds`", file=sys.stderr)
        return 1 if stale else 0
    for path in CRD_PATHS:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
