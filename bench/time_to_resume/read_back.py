"""Read a checkpoint back from S3 several ways, to put the trainer's download beside them."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig

from kubesft_api.checkpoints import CheckpointSettings
from kubesft_trainer.checkpoints import CheckpointStore
from kubesft_trainer.storage.objects import open_store
from kubesft_trainer.storage.s3_store import IO_CHUNK_SIZE, MAX_CONCURRENCY, MULTIPART_CHUNK_SIZE, S3Store
from testing.devcluster.s3 import S3Server


def read_back(s3: S3Server, uri: str, step: int, rounds: int, scratch: Path) -> dict[str, Any]:
    """The checkpoint resumed from, fetched again by this process, the arms rotated each round:

    - ``plainGet``: boto3 ``get_object`` of each object in turn, read to the end;
    - ``rangedGet``: the same in ranged ``get_object`` calls of the store's part size, one after
      another: what each of the store's ranged requests costs this S3 server;
    - ``storeFiles``: the trainer's own store transfers the folder (parallel ranged GETs);
    - ``store``: what the trainer's resume does, ``CheckpointStore.download``: that transfer and
      the sha256 check of every file against the manifest;
    - ``storeWholeObjects``: the same with one GET per object (no ranges): what the resume's
      download would cost without ranged GETs (moto copies the whole object for each range).

    Returns the objects' sizes and each arm's seconds per round.
    """
    os.environ.update(s3.env())
    store = CheckpointStore(open_store(uri, CheckpointSettings(uri=uri, endpoint_url=s3.endpoint_url)))
    (manifest,) = [manifest for manifest in store.complete() if manifest.step == step]
    whole = CheckpointStore(open_store(uri, CheckpointSettings(uri=uri, endpoint_url=s3.endpoint_url)))
    assert isinstance(whole.store, S3Store)
    whole.store.transfer_config = TransferConfig(
        multipart_threshold=1 << 40, max_concurrency=MAX_CONCURRENCY, io_chunksize=IO_CHUNK_SIZE
    )
    prefix = f"{uri.removeprefix(f's3://{s3.bucket}/')}/{manifest.name}/"
    s3_client = s3.client()
    listing = s3_client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix)
    sizes = {item["Key"].removeprefix(prefix): int(item["Size"]) for item in listing.get("Contents", [])}

    def plain_get() -> None:
        for key in sizes:
            s3_client.get_object(Bucket=s3.bucket, Key=prefix + key)["Body"].read()

    def ranged_get() -> None:
        for key, size in sizes.items():
            for start in range(0, size, MULTIPART_CHUNK_SIZE):
                last = min(size, start + MULTIPART_CHUNK_SIZE) - 1
                part = s3_client.get_object(Bucket=s3.bucket, Key=prefix + key, Range=f"bytes={start}-{last}")
                part["Body"].read()

    arms: dict[str, Callable[[], object]] = {
        "plainGet": plain_get,
        "rangedGet": ranged_get,
        "storeFiles": lambda: store.store.download_directory(manifest.name, scratch / "files"),
        "store": lambda: store.download(manifest, scratch / "store"),
        "storeWholeObjects": lambda: whole.download(manifest, scratch / "whole"),
    }
    seconds: dict[str, list[float]] = {arm: [] for arm in arms}
    for number in range(rounds):
        names_now = list(arms)
        for arm in names_now[number % len(arms) :] + names_now[: number % len(arms)]:
            started = time.perf_counter()
            arms[arm]()
            seconds[arm].append(time.perf_counter() - started)
            shutil.rmtree(scratch, ignore_errors=True)
    return {"sizes": sizes, "seconds": seconds}
