"""``s3://bucket/prefix`` through boto3, for AWS S3, MinIO and other S3-compatible stores.

The endpoint and region come from ``spec.checkpoints`` and the credentials from the standard
``AWS_*`` variables. Transfers use boto3's transfer manager: large files go up and down in
parallel multipart chunks, and the files of a folder are transferred concurrently.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s3transfer.subscribers import BaseSubscriber

from kubesft_api.checkpoints import CheckpointSettings
from kubesft_trainer.storage.objects import (
    Downloads,
    Landed,
    MissingObjectError,
    ObjectStore,
    Sizes,
    StorageError,
    as_folder,
    files_under,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

# boto3's own part size (s3transfer grows it for files that would need over 10,000 parts); 16 MiB
# parts measured no faster in bench/checkpoint_io. All files of a checkpoint share the workers.
# Against a store that serves faster than the pod's CPUs read (an in-cluster MinIO, loopback),
# the client's per-chunk work is the limit: 16 workers reading 256 KiB chunks (boto3's default)
# took 3-4x as long as 8 workers reading 1 MiB chunks for the same 270 MB (bench/RESULTS.md).
MULTIPART_THRESHOLD = 8 * 1024 * 1024
MULTIPART_CHUNK_SIZE = 8 * 1024 * 1024
IO_CHUNK_SIZE = 1024 * 1024
MAX_CONCURRENCY = 8
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 60.0
# botocore's own retries (standard mode, exponential backoff with jitter) cover throttling and
# brief network errors; longer outages are the caller's to retry.
MAX_ATTEMPTS = 4

_MISSING = ("NoSuchKey", "404", "NotFound")


class _Tell(BaseSubscriber):
    """Hands one download its known size (no HEAD request then) and reports it once complete."""

    def __init__(self, key: str, local: Path, landed: Landed | None, size: int | None) -> None:
        self.key, self.local, self.landed, self.size = key, local, landed, size

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        if self.size is not None:
            future.meta.provide_transfer_size(self.size)

    def on_done(self, future: Any, **kwargs: Any) -> None:
        if self.landed is None:
            return
        try:
            future.result()
        except Exception:
            return  # reported where the caller awaits the result
        self.landed(self.key, self.local)


class S3Store(ObjectStore):
    """``s3://bucket/prefix`` through boto3 and its transfer manager."""

    def __init__(self, uri: str, bucket: str, prefix: str, settings: CheckpointSettings) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.uri = uri
        self.bucket = bucket
        self.prefix = as_folder(prefix)
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
            io_chunksize=IO_CHUNK_SIZE,
            use_threads=True,
            preferred_transfer_client="classic",
        )

    def _key(self, key: str) -> str:
        return self.prefix + key.strip("/")

    def _storage_error(self, what: str, key: str, error: Exception) -> StorageError | None:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(error, ClientError):
            code = error.response.get("Error", {}).get("Code", "")
            if code in _MISSING:
                return MissingObjectError(self.location(key), key)
            if code == "NoSuchBucket":
                return StorageError(
                    f"{what} {self.location(key)} failed: bucket '{self.bucket}' does not exist"
                )
        if isinstance(error, (ClientError, BotoCoreError, Boto3Error)):
            return StorageError(f"{what} {self.location(key)} failed: {error}")
        return super()._storage_error(what, key, error)

    @contextmanager
    def _transfers(self) -> Iterator[Any]:
        from boto3.s3.transfer import create_transfer_manager

        # Leaving the manager's own context on an error cancels the other transfers, so one failed
        # file fails the whole call and nothing is left running. (Its ``shutdown(cancel=True)``
        # fails with a TypeError in s3transfer 0.19, hiding the error that led to it.)
        with create_transfer_manager(self.client, self.transfer_config) as manager:
            yield manager

    def upload_file(self, local: Path, key: str) -> int:
        return self._upload_files([(local, key)], key)

    def upload_directory(self, local_dir: Path, prefix: str) -> int:
        folder = as_folder(prefix)
        files = [(path, folder + path.relative_to(local_dir).as_posix()) for path in files_under(local_dir)]
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
        self.download_files([(key, local)])

    def download_files(self, files: Downloads, landed: Landed | None = None, sizes: Sizes = None) -> None:
        for _, local in files:
            local.parent.mkdir(parents=True, exist_ok=True)
        what = files[0][0] if len(files) == 1 else posixpath.commonpath([key for key, _ in files] or [""])
        with self._errors("downloading", what), self._transfers() as manager:
            futures = [
                (
                    key,
                    manager.download(
                        self.bucket,
                        self._key(key),
                        str(local),
                        subscribers=[_Tell(key, local, landed, (sizes or {}).get(key))],
                    ),
                )
                for key, local in files
            ]
            for key, future in futures:
                with self._errors("downloading", key):
                    future.result()

    def list_keys(self, prefix: str = "") -> list[str]:
        with self._errors("listing", prefix):
            paginator = self.client.get_paginator("list_objects_v2")
            keys = []
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + as_folder(prefix)):
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
                if error.response.get("Error", {}).get("Code") in _MISSING:
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
