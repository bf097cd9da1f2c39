"""The manifest that makes a checkpoint complete: every file with its size and sha256, written last."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from kubesft_api.times import now_utc

MANIFEST_NAME = "kubesft-manifest.json"
"""Object name of the manifest inside ``checkpoint-<step>/``."""

CHECKPOINT_PREFIX = "checkpoint-"
"""Folder name prefix, the same as transformers' own local checkpoint folders."""

_CHECKPOINT_FOLDER = re.compile(r"^checkpoint-(\d+)$")
_HASH_CHUNK = 8 * 1024 * 1024


def checkpoint_name(step: int) -> str:
    return f"{CHECKPOINT_PREFIX}{step}"


def step_of(folder: str) -> int | None:
    """``checkpoint-40`` -> 40; anything else -> None."""
    match = _CHECKPOINT_FOLDER.match(folder)
    return int(match.group(1)) if match else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class ManifestFile(_Model):
    path: str = Field(description="Path relative to the checkpoint folder, with '/'.", min_length=1)
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        parts = PurePosixPath(value).parts
        if value.startswith("/") or any(part in ("..", ".", "") for part in parts):
            raise ValueError(f"'{value}' is not a plain relative path")
        return value


class JobIdentity(_Model):
    """The SFTJob a run belongs to, as the operator passes it to the pod."""

    namespace: str | None = None
    name: str | None = None
    uid: str | None = None

    def __str__(self) -> str:
        where = "/".join(part for part in (self.namespace, self.name) if part) or "an unnamed job"
        return f"{where} (uid {self.uid})" if self.uid else where


class RunStamp(_Model):
    """What a run writes into each of its manifests about itself."""

    job: JobIdentity | None = None
    fingerprint: str | None = Field(default=None, description="sha256 of settings.")
    settings: dict[str, Any] | None = Field(
        default=None, description="The settings a resume must not change, by spec path."
    )
    schedule: dict[str, Any] | None = Field(
        default=None, description="Batch size, learning rate and schedule, which may change with a warning."
    )


class CheckpointManifest(RunStamp):
    """What a complete checkpoint holds. Its presence, valid, is what makes the checkpoint exist.

    Manifests of earlier versions have no stamp (job, fingerprint, settings); they resume as before.
    """

    format: Literal["kubesft.io/checkpoint/v1"] = "kubesft.io/checkpoint/v1"
    step: int = Field(ge=0)
    created_at: datetime
    files: list[ManifestFile] = Field(min_length=1)

    @property
    def name(self) -> str:
        return checkpoint_name(self.step)

    @property
    def total_bytes(self) -> int:
        return sum(item.size for item in self.files)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True, indent=1).encode()

    @classmethod
    def parse(cls, data: bytes, where: str) -> CheckpointManifest:
        """Raise ``ValueError`` naming ``where`` when the manifest is not valid."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as error:
            first = error.errors()[0]
            location = ".".join(str(part) for part in first["loc"]) or "manifest"
            raise ValueError(f"{where}: invalid manifest ({location}: {first['msg']})") from None


def build_manifest(directory: Path, step: int, stamp: RunStamp | None = None) -> CheckpointManifest:
    """Hash every file under ``directory`` (a local checkpoint folder); ``stamp`` says whose it is."""
    files = [
        ManifestFile(
            path=path.relative_to(directory).as_posix(), size=path.stat().st_size, sha256=sha256_of(path)
        )
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != MANIFEST_NAME
    ]
    if not files:
        raise ValueError(f"{directory}: the checkpoint folder holds no files")
    return CheckpointManifest(
        step=step, created_at=now_utc(), files=files, **(stamp or RunStamp()).model_dump()
    )


def file_problem(directory: Path, item: ManifestFile) -> str | None:
    """What is wrong with the local copy of one listed file: missing, wrong size or sha256."""
    path = directory / item.path
    if not path.is_file():
        return f"{item.path} is missing"
    if path.stat().st_size != item.size:
        return f"{item.path} has {path.stat().st_size} bytes, the manifest says {item.size}"
    if sha256_of(path) != item.sha256:
        return f"{item.path} does not match its sha256"
    return None


def verify_files(directory: Path, manifest: CheckpointManifest) -> list[str]:
    """Problems of a local copy against its manifest: missing files, wrong sizes or sha256."""
    return [problem for item in manifest.files if (problem := file_problem(directory, item)) is not None]
