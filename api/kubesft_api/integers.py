"""Whole numbers read from text others wrote: labels, annotations and environment variables."""

from __future__ import annotations

import re

_INTEGER = re.compile(r"^[+-]?[0-9]+$")


def int_or(value: object, default: int, *, strict: bool = False) -> int:
    """``value`` as an int: an int itself, or decimal text (blanks around it allowed).

    ``None`` and empty text give ``default``. So does anything else, unless ``strict``: then it
    raises ``ValueError``, for settings a person wrote and should hear about.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = "" if value is None else str(value).strip()
    if not text:
        return default
    if _INTEGER.match(text):
        return int(text)
    if strict:
        raise ValueError(f"{value!r} is not an integer")
    return default
