"""Regenerates the generated parts of committed files: TRL SFTConfig's argument list in
api/kubesft_api/sft_config_fields.py (from the installed TRL) and the SFTJob field reference in
README.md (from the CRD the models generate). ``--check`` changes nothing and fails when either
is stale. The CRD itself is ``python -m kubesft_operator.crd``.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
from collections.abc import Callable
from typing import Any

import trl
from trl import SFTConfig

from kubesft_operator.crd import build_crd

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIELDS = ROOT / "api/kubesft_api/sft_config_fields.py"
FIELDS_BEGIN = "# BEGIN GENERATED FIELDS"
FIELDS_END = "# END GENERATED FIELDS"
README = ROOT / "README.md"
README_BEGIN = "<!-- BEGIN SFTJOB REFERENCE (make crds) -->"
README_END = "<!-- END SFTJOB REFERENCE -->"


def render_sft_config_fields() -> str:
    names = sorted(f.name for f in dataclasses.fields(SFTConfig) if f.init)
    body = "\n".join(f'        "{name}",' for name in names)
    return (
        f"{FIELDS_BEGIN} (TRL {trl.__version__}; make crds regenerates)\n"
        f'SFT_CONFIG_TRL_VERSION = "{trl.__version__}"\n'
        "SFT_CONFIG_FIELDS: frozenset[str] = frozenset(\n    (\n"
        f"{body}\n    )\n)\n{FIELDS_END}"
    )


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
    lines = [README_BEGIN, "", "| Field | Type | Default | Description |", "|---|---|---|---|"]
    _rows("spec", schema["properties"]["spec"], lines)
    lines += ["", "Status fields, written by the operator:", ""]
    lines += ["| Field | Type | Default | Description |", "|---|---|---|---|"]
    _rows("status", schema["properties"]["status"], lines)
    lines += ["", README_END]
    return "\n".join(lines)


REGIONS: tuple[tuple[pathlib.Path, str, str, Callable[[], str]], ...] = (
    (FIELDS, FIELDS_BEGIN, FIELDS_END, render_sft_config_fields),
    (README, README_BEGIN, README_END, render_reference),
)


def main() -> int:
    stale = []
    for path, begin, end, render in REGIONS:
        text = path.read_text()
        start, stop = text.index(begin), text.index(end) + len(end)
        updated = text[:start] + render() + text[stop:]
        if updated == text:
            continue
        if "--check" in sys.argv:
            stale.append(path.relative_to(ROOT))
        else:
            path.write_text(updated)
    for path in stale:
        print(f"{path} is stale (TRL {trl.__version__}); run make crds", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
