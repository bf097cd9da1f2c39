"""The S3 store against moto's server: multipart uploads, and errors that name what failed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kubesft_api.checkpoints import CheckpointSettings
from kubesft_trainer.errors import TrainerError
from kubesft_trainer.storage.objects import MissingObjectError, StorageError, open_store
from tests.support.storage import checkpoint_like_tree

if TYPE_CHECKING:
    from tests.support.storage import MotoS3

pytest_plugins = ("tests.support.storage",)


def test_s3_multipart_upload_is_used_for_large_files(moto_s3: MotoS3, s3_bucket: str, tmp_path: Path) -> None:
    uri = f"s3://{s3_bucket}/big"
    store = open_store(uri, moto_s3.settings(uri))
    checkpoint_like_tree(tmp_path / "src")
    store.upload_directory(tmp_path / "src", "")
    client = moto_s3.client()
    big = client.head_object(Bucket=s3_bucket, Key="big/model.safetensors")
    small = client.head_object(Bucket=s3_bucket, Key="big/optimizer.pt")
    # S3 ETags of multipart objects end in -<parts>.
    assert big["ETag"].strip('"').endswith("-2")
    assert "-" not in small["ETag"]


def test_s3_errors_name_the_bucket_and_are_retryable(moto_s3: MotoS3, tmp_path: Path) -> None:
    uri = "s3://no-such-bucket-here/prefix"
    store = open_store(uri, moto_s3.settings(uri))
    with pytest.raises(StorageError, match="bucket 'no-such-bucket-here' does not exist") as raised:
        store.list_keys()
    assert isinstance(raised.value, TrainerError) and raised.value.exit_code == 1


def test_unreachable_endpoint_raises_a_storage_error(tmp_path: Path) -> None:
    uri = "s3://bucket/prefix"
    # Port 9 (discard) on loopback is closed: connections are refused at once.
    store = open_store(uri, CheckpointSettings(uri=uri, endpoint_url="http://127.0.0.1:9"))
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(StorageError, match=r"uploading to s3://bucket/prefix/k failed"):
        store.upload_file(tmp_path / "f", "k")
    with pytest.raises(StorageError, match=r"listing s3://bucket/prefix failed"):
        store.list_keys()


def test_one_missing_object_fails_a_download_by_its_key_and_the_others_are_told_as_they_land(
    moto_s3: MotoS3, s3_bucket: str, tmp_path: Path
) -> None:
    uri = f"s3://{s3_bucket}/several"
    store = open_store(uri, moto_s3.settings(uri))
    checkpoint_like_tree(tmp_path / "src")
    store.upload_directory(tmp_path / "src", "")
    landed: list[str] = []
    store.download_files(
        [("model.safetensors", tmp_path / "a" / "m"), ("optimizer.pt", tmp_path / "a" / "o")],
        lambda key, local: landed.append(f"{key} {local.stat().st_size}"),
    )
    sizes = {path.name: path.stat().st_size for path in (tmp_path / "src").iterdir()}
    assert sorted(landed) == [
        f"model.safetensors {sizes['model.safetensors']}",
        f"optimizer.pt {sizes['optimizer.pt']}",
    ]
    with pytest.raises(MissingObjectError, match=r"s3://.*/several/gone\.pt does not exist") as raised:
        store.download_files([("optimizer.pt", tmp_path / "b" / "o"), ("gone.pt", tmp_path / "b" / "g")])
    assert raised.value.key == "gone.pt"
