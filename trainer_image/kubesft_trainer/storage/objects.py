"""Object storage for models, data, checkpoints and outputs: S3-compatible stores and local folders.

``open_store(uri, settings)`` returns an ``ObjectStore`` rooted at the URI: keys are relative to
it and use ``/``. A non-empty ``prefix`` argument always names a folder, so ``checkpoint-1`` never
matches ``checkpoint-10/...``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from kubesft_api.checkpoints import CheckpointSettings
from kubesft_api.uris import ParsedUri, parse_uri
from kubesft_trainer.errors import TrainerError


class StorageError(TrainerError):
    """Object storage could not be read or written. Retryable: storage outages pass."""


class MissingObjectError(StorageError):
    """A key that was asked for does not exist in the store."""

    def __init__(self, location: str, key: str) -> None:
        super().__init__(f"{location} does not exist")
        self.key = key


def parse_storage_uri(uri: str) -> ParsedUri:
    """``parse_uri``, raising ``StorageError`` for a URI the trainer cannot map to storage."""
    try:
        return parse_uri(uri)
    except ValueError as error:
        raise StorageError(str(error)) from None


def as_folder(prefix: str) -> str:
    """``a/b`` -> ``a/b/``; the empty prefix stays empty."""
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def local_target(local_dir: Path, key: str) -> Path:
    """Where ``key`` goes under ``local_dir``; refuses keys that would land outside it."""
    parts = PurePosixPath(key).parts
    if not parts or any(part in ("..", "") for part in parts) or PurePosixPath(key).is_absolute():
        raise StorageError(f"refusing to download '{key}': it would land outside {local_dir}")
    return local_dir.joinpath(*parts)


def files_under(local_dir: Path) -> list[Path]:
    if not local_dir.is_dir():
        raise StorageError(f"{local_dir}: not a directory")
    return sorted(path for path in local_dir.rglob("*") if path.is_file())


Downloads = Sequence[tuple[str, Path]]
"""``(key, local file)`` pairs to download."""
Landed = Callable[[str, Path], None]
"""Told of each downloaded file, ``(key, local path)``, as it completes."""
Sizes = Mapping[str, int] | None
"""Sizes of keys, where the caller knows them."""


class ObjectStore(ABC):
    """Files under one URI. Every method raises ``StorageError`` naming the URI on failure."""

    uri: str

    def location(self, key: str = "") -> str:
        """The URI of ``key`` in this store."""
        key = key.strip("/")
        return f"{self.uri.rstrip('/')}/{key}" if key else self.uri

    def _storage_error(self, what: str, key: str, error: Exception) -> StorageError | None:
        """What ``error``, raised while doing ``what`` to ``key``, means; None when it is not a
        storage failure (a bug, which must not pass for a retryable outage)."""
        if isinstance(error, OSError):
            return StorageError(f"{what} {self.location(key)} failed: {error}")
        return None

    @contextmanager
    def _errors(self, what: str, key: str) -> Iterator[None]:
        """Turns the failures ``_storage_error`` recognises into ``StorageError``."""
        try:
            yield
        except StorageError:
            raise
        except Exception as error:
            failure = self._storage_error(what, key, error)
            if failure is None:
                raise
            raise failure from error

    @abstractmethod
    def upload_file(self, local: Path, key: str) -> int:
        """Copy one local file to ``key``; returns its size in bytes."""

    @abstractmethod
    def upload_directory(self, local_dir: Path, prefix: str) -> int:
        """Copy every file under ``local_dir`` to ``prefix/<relative path>``; returns bytes written."""

    @abstractmethod
    def download_file(self, key: str, local: Path) -> None:
        """Copy ``key`` to the local file ``local`` (parents are created)."""

    @abstractmethod
    def download_files(self, files: Downloads, landed: Landed | None = None, sizes: Sizes = None) -> None:
        """Copy each ``(key, local file)``. ``landed(key, local)`` is called, possibly from another
        thread, as soon as that file is complete, while the others may still be on their way.
        ``sizes``, where the caller knows them (a manifest), spare the store asking for them; a
        wrong one shows as a wrong file, which the caller's check must catch."""

    def download_directory(self, prefix: str, local_dir: Path) -> list[Path]:
        """Copy every key under ``prefix`` into ``local_dir``, keeping relative paths; returns them."""
        folder = as_folder(prefix)
        files = [(key, local_target(local_dir, key[len(folder) :])) for key in self.list_keys(prefix)]
        self.download_files(files)
        return [local for _, local in files]

    @abstractmethod
    def list_keys(self, prefix: str = "") -> list[str]:
        """Keys under the folder ``prefix`` (relative to the store's root), sorted."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete_key(self, key: str) -> None:
        """Delete one key; a missing key is not an error."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Delete every key under the folder ``prefix``."""


def open_store(uri: str, settings: CheckpointSettings) -> ObjectStore:
    """The store for ``uri``: ``s3://bucket/prefix``, an absolute path, ``file://`` or ``pvc://``."""
    # Imported here: both stores build on this module.
    from kubesft_trainer.storage.local_store import LocalStore
    from kubesft_trainer.storage.s3_store import S3Store

    parsed = parse_storage_uri(uri)
    if parsed.local_path is None:
        return S3Store(uri, parsed.bucket_or_claim, parsed.path, settings)
    return LocalStore(uri, Path(parsed.local_path))
