"""The URIs a spec names: s3://bucket/prefix, pvc://claim/path and absolute local paths.

The spec validates them, the operator mounts the claims of pvc:// URIs, and the trainer maps
them to local paths or object stores, all through ``parse_uri``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, JsonValue

from kubesft_api.base import K8S_NAME, UriText
from kubesft_api.pod_contract import pvc_mount_path

Scheme = Literal["s3", "pvc", "file"]
STORAGE_SCHEMES: tuple[Scheme, ...] = ("s3", "pvc")
"""Schemes besides local paths (``/path`` or ``file:///path``), which are always accepted."""

_URI = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://(.*)$")
_ROOTS: dict[Scheme, tuple[re.Pattern[str], str, str]] = {
    "s3": (
        re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"),
        "an s3:// URI needs a bucket",
        "s3://bucket/prefix",
    ),
    "pvc": (re.compile(K8S_NAME), "a pvc:// URI needs a claim name", "pvc://claim/path"),
}
"""What comes after ``scheme://``: its pattern, the error when it is missing, and the URI's shape."""


@dataclass(frozen=True)
class ParsedUri:
    """A storage URI taken apart. A local path has scheme ``file`` and an absolute ``path``."""

    scheme: Scheme
    bucket_or_claim: str
    """The S3 bucket or the PersistentVolumeClaim; empty for a local path."""
    path: str
    """The key or prefix inside the bucket or claim (no leading ``/``), or the absolute local path."""

    def __str__(self) -> str:
        if self.scheme == "file":
            return self.path
        root = f"{self.scheme}://{self.bucket_or_claim}"
        return f"{root}/{self.path}" if self.path else root

    @property
    def name(self) -> str:
        """The last segment of ``path``."""
        return PurePosixPath(self.path).name

    @property
    def parent(self) -> ParsedUri:
        """The URI one segment up (the bucket or claim itself at the top)."""
        parent = PurePosixPath(self.path).parent.as_posix()
        return replace(self, path="" if parent == "." else parent)

    @property
    def local_path(self) -> str | None:
        """Where a trainer pod sees it: the path itself, or under the claim's mount; None for S3."""
        if self.scheme == "s3":
            return None
        if self.scheme == "pvc":
            mount = pvc_mount_path(self.bucket_or_claim)
            return f"{mount}/{self.path}" if self.path else mount
        return self.path


def parse_uri(text: str, schemes: tuple[Scheme, ...] = STORAGE_SCHEMES) -> ParsedUri:
    """Take apart ``scheme://…`` for the listed schemes, a ``file://`` URI or an absolute path.

    Raises ``ValueError`` saying what is wrong with ``text``.
    """
    accepted = " or ".join(f"{scheme}://…" for scheme in schemes)
    match = _URI.match(text)
    if match is None:
        if text.startswith("/"):
            return ParsedUri("file", "", text)
        raise ValueError(
            f"'{text}' is neither an absolute path nor a URI; use {accepted} or an absolute path"
        )
    scheme, rest = match.group(1).lower(), match.group(2)
    if scheme == "file":
        if not rest.startswith("/"):
            raise ValueError(f"'{text}': a file:// URI needs an absolute path")
        return ParsedUri("file", "", rest)
    root, _, path = rest.partition("/")
    for candidate in schemes:
        if candidate == scheme and candidate in _ROOTS:
            pattern, needs, shape = _ROOTS[candidate]
            if not root:
                raise ValueError(f"'{text}': {needs}")
            if not pattern.match(root):
                raise ValueError(f"'{text}' is not a valid {shape} URI")
            return ParsedUri(candidate, root, path)
    supported = ", ".join(f"{s}://" for s in schemes)
    raise ValueError(f"scheme '{scheme}://' is not supported; use {supported} or an absolute local path")


def segment_problem(uri: ParsedUri) -> str | None:
    """Why the key or path inside a bucket or claim is ambiguous, or None.

    An empty, ``.`` or ``..`` segment names a different object on each store (S3 keeps it as
    written, a claim's file system resolves it, ``..`` even outside the claim); one trailing ``/``
    is allowed.
    """
    if uri.scheme == "file" or not uri.path:
        return None
    for segment in uri.path.removesuffix("/").split("/"):
        if segment in ("", ".", ".."):
            shown = "an empty" if not segment else f"a '{segment}'"
            return f"'{uri}' has {shown} path segment; write the key without '//', '.' or '..'"
    return None


_SEGMENTS_RULE: dict[str, JsonValue] = {
    "rule": r"!self.matches('^(s3|pvc)://[^/]*/((.*/)?(\\.{1,2})?/|(.*/)?\\.{1,2}$)')",
    "message": "an s3:// or pvc:// path must not have empty ('//'), '.' or '..' segments",
}
"""The same check as ``segment_problem`` for the API server (CEL), so it holds without the webhook."""


def _accepting(*schemes: Scheme) -> AfterValidator:
    def check(value: str) -> str:
        problem = segment_problem(parse_uri(value, schemes))
        if problem is not None:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


_CEL_SEGMENTS = Field(json_schema_extra={"x-kubernetes-validations": [_SEGMENTS_RULE]})

StorageUri = Annotated[UriText, _accepting(*STORAGE_SCHEMES), _CEL_SEGMENTS]
"""A spec field naming s3://bucket/prefix, pvc://claim/path or an absolute local path."""
S3OrLocalUri = Annotated[UriText, _accepting("s3"), _CEL_SEGMENTS]
"""A spec field naming s3://bucket/prefix or an absolute local path."""
