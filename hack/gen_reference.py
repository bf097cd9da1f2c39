"""Writes the SFTJob field reference into README.md from the generated CRD schema."""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

from kubesft_operator.crd import build_crd

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BEGIN = "<!-- BEGIN SFTJOB REFERENCE (make crds) -->"
END = "<!-- END SFTJOB REFERENCE -->"


def _type(node: dict[str, Any]) -> str:
    kind = node.get("type", "object")
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if kind == "array":
        return f"list of {_type(node.get('items', {}))}"
    if kind == "object" and "additionalProperties" in node:
        return f"map of {_type(node['additionalProperties'])}"
    return str(kind)


def _bounds(node: dict[str, Any]) -> str:
    parts = []
    for key, sign in (("minimum", "≥"), ("maximum", "≤")):
        if key in node:
            strict = node.get("exclusive" + key.capitalize()) is True
            parts.append(f"{sign.replace('≥', '>').replace('≤', '<') if strict else sign} {node[key]}")
    if "minLength" in node and node["minLength"] > 0:
        parts.append(f"length ≥ {node['minLength']}")
    if "maxLength" in node:
        parts.append(f"length ≤ {node['maxLength']}")
    if "maxItems" in node:
        parts.append(f"≤ {node['maxItems']} items")
    return ", ".join(parts)


def _rows(path: str, node: dict[str, Any], out: list[str]) -> None:
    for name, sub in node.get("properties", {}).items():
        field = f"{path}.{name}"
        default = json.dumps(sub["default"]) if "default" in sub else ""
        desc = sub.get("description", "").replace("|", "\\|").replace("\n", " ")
        bounds = _bounds(sub)
        out.append(
            f"| `{field}` | {_type(sub)} | {f'`{default}`' if default else ''} | {desc}"
            f"{f' ({bounds})' if bounds else ''} |"
        )
        items = sub.get("items", {})
        if "properties" in sub:
            _rows(field, sub, out)
        elif "properties" in items:
            _rows(field + "[]", items, out)


def render_reference() -> str:
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    lines = [BEGIN, "", "| Field | Type | Default | Description |", "|---|---|---|---|"]
    _rows("spec", schema["properties"]["spec"], lines)
    lines += ["", "Status fields, written by the operator:", ""]
    lines += ["| Field | Type | Default | Description |", "|---|---|---|---|"]
    _rows("status", schema["properties"]["status"], lines)
    lines += ["", END]
    return "\n".join(lines)


def updated_readme(text: str) -> str:
    start, stop = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + render_reference() + text[stop:]


def main() -> int:
    text = README.read_text()
    new = updated_readme(text)
    if "--check" in sys.argv:
        if new != text:
            print("README.md field reference is stale; run make crds", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
