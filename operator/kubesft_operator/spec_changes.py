"""Which spec changes a started SFTJob accepts: suspend, the deadline and the TTL, nothing else.

A running job keeps the spec it started with (recorded in an annotation); the webhook refuses
other changes at admission, and the operator ignores them if they get through: it runs the spec in
effect, the one the job started with plus the fields that may change.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from kubesft_api.sftjob import InvalidSpecError, SFTJobSpec, parse_spec

MUTABLE_FIELDS: tuple[tuple[str, str], ...] = (
    ("runPolicy", "suspend"),
    ("runPolicy", "activeDeadlineSeconds"),
    ("runPolicy", "ttlSecondsAfterFinished"),
)
MUTABLE_FIELD_NAMES = ", ".join(f"spec.{a}.{b}" for a, b in MUTABLE_FIELDS)
ACTIVE_PHASES = ("Pending", "Validating", "Running", "Suspended")
"""Phases in which the spec is frozen: the job has started and has not finished."""
KEEPS_ITS_SPEC = (
    "the job keeps the spec it started with. "
    f"Only {MUTABLE_FIELD_NAMES} can change now: delete and re-create the SFTJob to change the rest."
)


_MUTABLE_PATHS = frozenset(f"spec.{section}.{field}" for section, field in MUTABLE_FIELDS)


def _diff(old: Any, new: Any, path: str) -> list[str]:
    if path in _MUTABLE_PATHS:
        return []
    if isinstance(old, dict) or isinstance(new, dict):
        old = {} if old is None else old
        new = {} if new is None else new
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += _diff(old.get(key), new.get(key), f"{path}.{key}")
        return out
    return [] if old == new else [path]


def with_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as the models read it: a section the API server filled with its defaults (say after
    a merge patch created ``runPolicy``) is then no change from the same section left out."""
    try:
        return parse_spec(spec).model_dump(mode="json", by_alias=True, exclude_none=True)
    except InvalidSpecError:
        return spec


def immutable_changes(applied: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Dotted paths (``spec.training.learningRate``) that differ outside the mutable fields."""
    return _diff(with_defaults(applied), with_defaults(current), "spec")


def with_mutable_fields(applied: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """The applied spec with the mutable fields taken from the current one (inputs are not changed)."""
    out = dict(applied)
    for section, field in MUTABLE_FIELDS:
        value = (current.get(section) or {}).get(field)
        target = out[section] = dict(out.get(section) or {})
        if value is None:
            target.pop(field, None)
        else:
            target[field] = value
    return out


def refusal_message(paths: list[str], phase: str) -> str:
    shown = ", ".join(paths[:8]) + (f" and {len(paths) - 8} more" if len(paths) > 8 else "")
    return f"{shown} cannot change while the job is {phase}; {KEEPS_ITS_SPEC}"


@lru_cache(maxsize=2048)
def effective_spec(
    applied_raw: str | None, current_raw: str
) -> tuple[SFTJobSpec | None, tuple[str, ...], tuple[str, ...]]:
    """(spec in effect, problems if it is invalid, refused changes) for the JSON of the spec the
    job started with (None before it started) and of its spec now.

    Cached: every watch event of an SFTJob, its Job or its Pods runs the state machine again,
    while the spec itself rarely changes.
    """
    current = json.loads(current_raw)
    if applied_raw is None:
        try:
            return parse_spec(current), (), ()
        except InvalidSpecError as exc:
            return None, tuple(exc.problems), ()
    applied = json.loads(applied_raw)
    refused = immutable_changes(applied, current)
    try:
        return parse_spec(with_mutable_fields(applied, current)), (), tuple(refused)
    except InvalidSpecError:
        return parse_spec(applied), (), tuple(refused or ["spec.runPolicy"])
