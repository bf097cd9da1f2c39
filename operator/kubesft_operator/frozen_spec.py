"""The freeze of a started SFTJob's spec as CEL transition rules for the CRD's root schema.

The webhook refuses the same changes (``spec_changes``) and names each changed field; these rules
hold where the webhook is off or down, and name the changed section. They sit on the root, not on
``spec``, because whether the spec is frozen depends on ``status.phase``. Each section is compared
as a whole, so adding a section that only repeats its defaults counts as a change here; in
``runPolicy``, where the mutable fields live, each other field is compared with its default.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo

from kubesft_api.run_policy import RunPolicy
from kubesft_api.sftjob import SFTJobSpec
from kubesft_operator.spec_changes import ACTIVE_PHASES, KEEPS_ITS_SPEC, MUTABLE_FIELDS

_STARTED = "has(oldSelf.status) && has(oldSelf.status.phase) && oldSelf.status.phase in " + json.dumps(
    list(ACTIVE_PHASES)
).replace('"', "'")
_MESSAGE = f"'cannot change while the job is ' + oldSelf.status.phase + '; {KEEPS_ITS_SPEC}'"


def _alias(name: str, info: FieldInfo) -> str:
    return info.alias or to_camel(name)


def _literal(value: Any) -> str:
    return json.dumps(value).replace('"', "'")


def _same_optional(path: str) -> str:
    return f"has(self.{path}) == has(oldSelf.{path}) && (!has(self.{path}) || self.{path} == oldSelf.{path})"


def _same_run_policy_field(field: str, default: Any) -> str:
    def value(root: str) -> str:
        return f"(has({root}.spec.runPolicy) && has({root}.spec.runPolicy.{field}) ? {root}.spec.runPolicy.{field} : {_literal(default)})"

    if default is None:
        new, old = (
            f"(has({r}.spec.runPolicy) && has({r}.spec.runPolicy.{field}))" for r in ("self", "oldSelf")
        )
        return f"{new} == {old} && (!{new} || self.spec.runPolicy.{field} == oldSelf.spec.runPolicy.{field})"
    return f"{value('self')} == {value('oldSelf')}"


def _frozen(same: str, field_path: str) -> dict[str, str]:
    return {
        "rule": f"!({_STARTED}) || ({same})",
        "messageExpression": _MESSAGE,
        "message": f"cannot change while the job runs; {KEEPS_ITS_SPEC}",
        "fieldPath": field_path,
    }


def frozen_spec_rules() -> list[dict[str, str]]:
    """One transition rule per spec section (and per immutable runPolicy field)."""
    rules = []
    for name, info in SFTJobSpec.model_fields.items():
        alias = _alias(name, info)
        if alias != "runPolicy":
            rules.append(_frozen(_same_optional(f"spec.{alias}"), f".spec.{alias}"))
    mutable = {field for section, field in MUTABLE_FIELDS if section == "runPolicy"}
    for name, info in RunPolicy.model_fields.items():
        alias = _alias(name, info)
        if alias not in mutable:
            rules.append(_frozen(_same_run_policy_field(alias, info.default), f".spec.runPolicy.{alias}"))
    return rules
