"""Object storage for models, data, checkpoints and outputs: S3-compatible stores and local folders.

``open_store(uri, settings)`` returns an ``ObjectStore`` rooted at the URI: keys are relative to
it and use ``/``. A non-empty ``prefix`` argument always names a folder, so ``checkpoint-1`` never
matches ``checkpoint-10/...``.

S3 goes through boto3 with the endpoint and region of ``spec.checkpoints`` and the standard
``AWS_*`` credentials, so AWS S3, MinIO and other S3-compatible stores all work. Transfers use
boto3's transfer manager: large files go up and down in parallel multipart chunks, and the files of
a folder are transferred concurrently.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from kubesft_api.checkpoints import CheckpointSettings
from kubesft_trainer.errors import TrainerError

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

PVC_MOUNT_ROOT = Path("/mnt/pvc")
"""Where the operator mounts the PersistentVolumeClaim ``claim`` of a ``pvc://claim/path`` URI."""

# boto3's own part size (s3transfer grows it for files that would need over 10,000 parts); 16 MiB
# parts measured no faster in bench/checkpoint_io. All files of a checkpoint share the workers.
MULTIPART_THRESHOLD = 8 * 1024 * 1024
MULTIPART_CHUNK_SIZE = 8 * 1024 * 1024
MAX_CONCURRENCY = 16
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 60.0
# botocore's own retries (standard mode, exponential backoff with jitter) cover throttling and
# brief network errors; longer outages are the caller's to retry.
MAX_ATTEMPTS = 4

_URI = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://(.*)$")


class StorageError(TrainerError):
    """Object storage could not be read or written. Retryable: storage outages pass."""


def resolve_local_path(uri: str) -> Path | None:
    """The local path an absolute path, ``file://`` or ``pvc://`` URI names; ``None`` for ``s3://``."""
    match = _URI.match(uri)
    if match is None:
        if not uri.startswith("/"):
            raise StorageError(f"{uri}: neither an absolute path nor a URI")
        return Path(uri)
    scheme, rest = match.group(1).lower(), match.group(2)
    if scheme == "s3":
        return None
    if scheme == "file":
        if not rest.startswith("/"):
            raise StorageError(f"{uri}: a file:// URI needs an absolute path")
        return Path(rest)
    if scheme == "pvc":
        claim, _, path = rest.partition("/")
        if not claim:
            raise StorageError(f"{uri}: a pvc:// URI needs a claim name")
        return PVC_MOUNT_ROOT / claim / path if path else PVC_MOUNT_ROOT / claim
    raise StorageError(f"{uri}: scheme '{scheme}://' is not supported; use s3://, pvc://, file:// or a path")


def _folder(prefix: str) -> str:
    """``a/b`` -> ``a/b/``; the empty prefix stays empty."""
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def _relative_local_path(local_dir: Path, key: str) -> Path:
    """Where ``key`` goes under ``local_dir``; refuses keys that would land outside it."""
    parts = PurePosixPath(key).parts
    if not parts or any(part in ("..", "") for part in parts) or PurePosixPath(key).is_absolute():
        raise StorageError(f"refusing to download '{key}': it would land outside {local_dir}")
    return local_dir.joinpath(*parts)


def _local_files(local_dir: Path) -> list[Path]:
    if not local_dir.is_dir():
        raise StorageError(f"{local_dir}: not a directory")
    return sorted(path for path in local_dir.rglob("*") if path.is_file())


class ObjectStore(ABC):
    """Files under one URI. Every method raises ``StorageError`` naming the URI on failure."""

    uri: str

    def location(self, key: str = "") -> str:
        """The URI of ``key`` in this store."""
        key = key.strip("/")
        return f"{self.uri.rstrip('/')}/{key}" if key else self.uri

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
    def download_directory(self, prefix: str, local_dir: Path) -> list[Path]:
        """Copy every key under ``prefix`` into ``local_dir``, keeping relative paths; returns them."""

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


class LocalStore(ObjectStore):
    """A folder on a local or shared filesystem. Files appear under their final name only whole."""

    def __init__(self, uri: str, root: Path) -> None:
        self.uri = uri
        self.root = root

    def _path(self, key: str) -> Path:
        return _relative_local_path(self.root, key.strip("/")) if key.strip("/") else self.root

    @contextmanager
    def _errors(self, what: str, key: str) -> Iterator[None]:
        try:
            yield
        except StorageError:
            raise
        except OSError as error:
            raise StorageError(f"{what} {self.location(key)} failed: {error}") from error

    def _write_atomically(self, target: Path, write: Any) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        os.close(handle)
        try:
            write(Path(temporary))
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def upload_file(self, local: Path, key: str) -> int:
        with self._errors("writing", key):
            self._write_atomically(self._path(key), lambda tmp: shutil.copyfile(local, tmp))
            return local.stat().st_size

    def upload_directory(self, local_dir: Path, prefix: str) -> int:
        folder = _folder(prefix)
        return sum(
            self.upload_file(path, folder + path.relative_to(local_dir).as_posix())
            for path in _local_files(local_dir)
        )

    def download_file(self, key: str, local: Path) -> None:
        with self._errors("reading", key):
            source = self._path(key)
            if not source.is_file():
                raise StorageError(f"{self.location(key)} does not exist")
            local.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, local)

    def download_directory(self, prefix: str, local_dir: Path) -> list[Path]:
        folder = _folder(prefix)
        written = []
        for key in self.list_keys(prefix):
            target = _relative_local_path(local_dir, key[len(folder) :])
            self.download_file(key, target)
            written.append(target)
        return written

    def list_keys(self, prefix: str = "") -> list[str]:
        with self._errors("listing", prefix):
            base = self._path(prefix)
            if not base.is_dir():
                return []
            return sorted(
                path.relative_to(self.root).as_posix()
                for path in base.rglob("*")
                if path.is_file() and not path.name.endswith(".part")
            )

    def read_bytes(self, key: str) -> bytes:
        with self._errors("reading", key):
            try:
                return self._path(key).read_bytes()
            except FileNotFoundError:
                raise StorageError(f"{self.location(key)} does not exist") from None

    def write_bytes(self, key: str, data: bytes) -> None:
        with self._errors("writing", key):
            self._write_atomically(self._path(key), lambda tmp: tmp.write_bytes(data))

    def exists(self, key: str) -> bool:
        with self._errors("checking", key):
            return self._path(key).is_file()

    def delete_key(self, key: str) -> None:
        with self._errors("deleting", key):
            self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        with self._errors("deleting", prefix):
            target = self._path(prefix)
            if target == self.root:
                for child in self.root.iterdir() if self.root.exists() else []:
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
            elif target.is_dir():
                shutil.rmtree(target)


class S3Store(ObjectStore):
    """``s3://bucket/prefix`` through boto3 and its transfer manager."""

    def __init__(self, uri: str, bucket: str, prefix: str, settings: CheckpointSettings) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.uri = uri
        self.bucket = bucket
        self.prefix = _folder(prefix)
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region,
            config=Config(
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                read_timeout=READ_TIMEOUT_SECONDS,
                retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
                max_pool_connections=MAX_CONCURRENCY * 2,
            ),
        )
        self.transfer_config = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD,
            multipart_chunksize=MULTIPART_CHUNK_SIZE,
            max_concurrency=MAX_CONCURRENCY,
            use_threads=True,
            preferred_transfer_client="classic",
        )

    def _key(self, key: str) -> str:
        return self.prefix + key.strip("/")

    @contextmanager
    def _errors(self, what: str, key: str) -> Iterator[None]:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except StorageError:
            raise
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise StorageError(f"{self.location(key)} does not exist") from error
            if code == "NoSuchBucket":
                raise StorageError(
                    f"{what} {self.location(key)} failed: bucket '{self.bucket}' does not exist"
                ) from error
            raise StorageError(f"{what} {self.location(key)} failed: {error}") from error
        except (BotoCoreError, Boto3Error, OSError) as error:
            raise StorageError(f"{what} {self.location(key)} failed: {error}") from error

    @contextmanager
    def _transfers(self) -> Iterator[Any]:
        from boto3.s3.transfer import create_transfer_manager

        manager = create_transfer_manager(self.client, self.transfer_config)
        try:
            yield manager
        except BaseException:
            # One failed file fails the whole call: the others are cancelled, not left running.
            manager.shutdown(cancel=True)
            raise
        manager.shutdown()

    def upload_file(self, local: Path, key: str) -> int:
        return self._upload_files([(local, key)], key)

    def upload_directory(self, local_dir: Path, prefix: str) -> int:
        folder = _folder(prefix)
        files = [(path, folder + path.relative_to(local_dir).as_posix()) for path in _local_files(local_dir)]
        return self._upload_files(files, prefix)

    def _upload_files(self, files: list[tuple[Path, str]], what: str) -> int:
        with self._errors("uploading to", what), self._transfers() as manager:
            futures: list[tuple[str, Future[Any]]] = [
                (key, manager.upload(str(local), self.bucket, self._key(key))) for local, key in files
            ]
            for key, future in futures:
                with self._errors("uploading to", key):
                    future.result()
            return sum(local.stat().st_size for local, _ in files)

    def download_file(self, key: str, local: Path) -> None:
        self._download_files([(key, local)], key)

    def download_directory(self, prefix: str, local_dir: Path) -> list[Path]:
        folder = _folder(prefix)
        files = [(key, _relative_local_path(local_dir, key[len(folder) :])) for key in self.list_keys(prefix)]
        self._download_files(files, prefix)
        return [local for _, local in files]

    def _download_files(self, files: list[tuple[str, Path]], what: str) -> None:
        for _, local in files:
            local.parent.mkdir(parents=True, exist_ok=True)
        with self._errors("downloading", what), self._transfers() as manager:
            futures = [
                (key, manager.download(self.bucket, self._key(key), str(local))) for key, local in files
            ]
            for key, future in futures:
                with self._errors("downloading", key):
                    future.result()

    def list_keys(self, prefix: str = "") -> list[str]:
        with self._errors("listing", prefix):
            paginator = self.client.get_paginator("list_objects_v2")
            keys = []
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + _folder(prefix)):
                for item in page.get("Contents", []):
                    key = item["Key"][len(self.prefix) :]
                    if key and not key.endswith("/"):
                        keys.append(key)
            return sorted(keys)

    def read_bytes(self, key: str) -> bytes:
        with self._errors("reading", key):
            data: bytes = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
            return data

    def write_bytes(self, key: str, data: bytes) -> None:
        with self._errors("writing", key):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        with self._errors("checking", key):
            try:
                self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise
            return True

    def delete_key(self, key: str) -> None:
        with self._errors("deleting", key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_prefix(self, prefix: str) -> None:
        keys = self.list_keys(prefix)
        with self._errors("deleting", prefix):
            for start in range(0, len(keys), 1000):
                batch: list[ObjectIdentifierTypeDef] = [
                    {"Key": self._key(key)} for key in keys[start : start + 1000]
                ]
                response = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
                errors = response.get("Errors", [])
                if errors:
                    first = errors[0]
                    raise StorageError(
                        f"deleting {self.location(prefix)} failed for {len(errors)} keys, "
                        f"e.g. {first.get('Key')}: {first.get('Message')}"
                    )


def open_store(uri: str, settings: CheckpointSettings) -> ObjectStore:
    """The store for ``uri``: ``s3://bucket/prefix``, an absolute path, ``file://`` or ``pvc://``."""
    match = _URI.match(uri)
    if match is not None and match.group(1).lower() == "s3":
        bucket, _, prefix = match.group(2).partition("/")
        if not bucket:
            raise StorageError(f"{uri}: an s3:// URI needs a bucket")
        return S3Store(uri, bucket, prefix, settings)
    root = resolve_local_path(uri)
    assert root is not None
    return LocalStore(uri, root)
