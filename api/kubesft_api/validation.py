"""Turns pydantic validation errors into messages that name the spec field at fault."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

_FIELD_ERROR = "kubesft_field"


def field_error(path: str, message: str) -> PydanticCustomError:
    """An error a model validator raises about ``path``, relative to the model it checks."""
    return PydanticCustomError(_FIELD_ERROR, "{path}: {message}", {"path": path, "message": message})


def _path(root: str, loc: tuple[int | str, ...]) -> str:
    out = root
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith("function-") or part in ("str", "int", "float", "bool", "list", "dict"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _message(error: ErrorDetails) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    bounds = {
        "greater_than_equal": ("≥", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("≤", "le"),
        "less_than": ("<", "lt"),
    }
    if kind in bounds:
        sign, key = bounds[kind]
        return f"must be {sign} {_number(ctx[key])}, got {_number(value)}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {value!r}"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required"
    if kind == "string_pattern_mismatch":
        return f"{value!r} does not match the pattern {ctx.get('pattern')}"
    if kind in ("too_short", "string_too_short"):
        least = ctx.get("min_length")
        unit = "characters" if kind == "string_too_short" else "items"
        return "must not be empty" if least == 1 else f"must have at least {least} {unit}"
    if kind in ("too_long", "string_too_long"):
        unit = "characters" if kind == "string_too_long" else "items"
        return f"must have at most {ctx.get('max_length')} {unit}"
    message = error["msg"]
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    if message.startswith("Input should be"):
        return f"must be{message.removeprefix('Input should be')}, got {value!r}"
    return message


def describe_validation_error(exc: ValidationError, root: str = "spec") -> list[str]:
    """One ``field.path: problem`` line per error, paths in the camelCase the user wrote."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        if error["type"] == _FIELD_ERROR:
            ctx = error.get("ctx") or {}
            lines.append(f"{_path(root, (*loc, str(ctx['path'])))}: {ctx['message']}")
        else:
            lines.append(f"{_path(root, loc)}: {_message(error)}")
    return lines
