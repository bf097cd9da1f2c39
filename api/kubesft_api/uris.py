"""The URIs a spec names: s3://bucket/prefix, pvc://claim/path and absolute local paths."""

from __future__ import annotations

import re


def check_uri(value: str | None, schemes: tuple[str, ...], what: str) -> str | None:
    """Accept ``scheme://…`` for the listed schemes, or an absolute local path."""
    if value is None:
        return None
    match = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://(.*)$", value)
    if match is None:
        if value.startswith("/"):
            return value
        raise ValueError(
            f"'{value}' is neither an absolute path nor a URI; "
            f"use {' or '.join(s + '://…' for s in schemes)} or an absolute path for {what}"
        )
    scheme, rest = match.group(1).lower(), match.group(2)
    if scheme == "file":
        if not rest.startswith("/"):
            raise ValueError(f"'{value}': a file:// URI needs an absolute path")
        return value
    if scheme not in schemes:
        supported = ", ".join(s + "://" for s in schemes)
        raise ValueError(
            f"scheme '{scheme}://' is not supported for {what}; use {supported} or an absolute local path"
        )
    if scheme == "s3" and not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$", rest):
        raise ValueError(f"'{value}' is not a valid s3://bucket/prefix URI")
    if scheme == "pvc" and not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(/.*)?$", rest):
        raise ValueError(f"'{value}' is not a valid pvc://claim/path URI")
    return value
