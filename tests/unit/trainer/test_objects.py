"""One object store API over S3 (moto's server on loopback) and local folders, and the store
a URI opens."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kubesft_api.checkpoints import CheckpointSettings
from kubesft_api.pod_contract import PVC_ROOT
from kubesft_trainer.storage.local_store import LocalStore
from kubesft_trainer.storage.objects import ObjectStore, StorageError, open_store
from kubesft_trainer.storage.s3_store import S3Store
from tests.support.storage import checkpoint_like_tree

if TYPE_CHECKING:
    from tests.support.storage import MotoS3

pytest_plugins = ("tests.support.storage",)


@pytest.fixture(params=["s3", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "s3":
        server: MotoS3 = request.getfixturevalue("moto_s3")
        bucket = request.getfixturevalue("s3_bucket")
        uri = f"s3://{bucket}/runs/job-a"
        return open_store(uri, server.settings(uri))
    root = tmp_path / "store"
    return open_store(f"file://{root}", CheckpointSettings())


def test_directory_round_trip_keeps_every_byte(store: ObjectStore, tmp_path: Path) -> None:
    files = checkpoint_like_tree(tmp_path / "src")
    written = store.upload_directory(tmp_path / "src", "checkpoint-4")
    assert written == sum(len(data) for data in files.values())

    assert store.list_keys("checkpoint-4") == sorted(f"checkpoint-4/{name}" for name in files)
    downloaded = store.download_directory("checkpoint-4", tmp_path / "dst")
    assert sorted(p.relative_to(tmp_path / "dst").as_posix() for p in downloaded) == sorted(files)
    for name, data in files.items():
        got = (tmp_path / "dst" / name).read_bytes()
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), name


def test_single_objects_bytes_and_existence(store: ObjectStore, tmp_path: Path) -> None:
    assert not store.exists("manifests/a.json")
    store.write_bytes("manifests/a.json", b'{"step": 1}')
    assert store.exists("manifests/a.json")
    assert store.read_bytes("manifests/a.json") == b'{"step": 1}'

    source = tmp_path / "weights.bin"
    source.write_bytes(b"w" * 4096)
    assert store.upload_file(source, "single/weights.bin") == 4096
    store.download_file("single/weights.bin", tmp_path / "deep" / "copy.bin")
    assert (tmp_path / "deep" / "copy.bin").read_bytes() == b"w" * 4096
    assert store.location("single/weights.bin") == store.uri + "/single/weights.bin"


def test_prefixes_are_folders_not_string_prefixes(store: ObjectStore) -> None:
    for step in (1, 10, 100):
        store.write_bytes(f"checkpoint-{step}/trainer_state.json", b"{}")
    assert store.list_keys("checkpoint-1") == ["checkpoint-1/trainer_state.json"]

    store.delete_prefix("checkpoint-1")
    assert store.list_keys() == ["checkpoint-10/trainer_state.json", "checkpoint-100/trainer_state.json"]
    store.delete_prefix("does-not-exist")
    assert len(store.list_keys()) == 2


def test_missing_objects_raise_a_storage_error_naming_the_uri(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(
        StorageError,
        match=r"runs/job-a/nothing/here\.bin does not exist|store/nothing/here\.bin does not exist",
    ):
        store.read_bytes("nothing/here.bin")
    with pytest.raises(StorageError, match=r"nothing/here\.bin"):
        store.download_file("nothing/here.bin", tmp_path / "x")
    assert store.download_directory("nothing", tmp_path / "empty") == []


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/data/train.jsonl", Path("/data/train.jsonl")),
        ("file:///data/train.jsonl", Path("/data/train.jsonl")),
        ("pvc://datasets/chat/train.jsonl", Path(PVC_ROOT, "datasets", "chat", "train.jsonl")),
        ("pvc://datasets", Path(PVC_ROOT, "datasets")),
    ],
)
def test_local_uris_open_the_folder_they_name_in_the_pod(uri: str, expected: Path) -> None:
    store = open_store(uri, CheckpointSettings())
    assert isinstance(store, LocalStore) and store.root == expected
    assert store.location("a/b") == f"{uri}/a/b", "messages name the URI the spec gave"


def test_s3_uris_open_the_bucket_and_prefix() -> None:
    store = open_store("s3://bucket/some/prefix", CheckpointSettings())
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix) == ("bucket", "some/prefix/")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("gs://bucket/x", "scheme 'gs://' is not supported"),
        ("relative/path", "neither an absolute path nor a URI"),
        ("file://relative", "needs an absolute path"),
        ("pvc:///path", "needs a claim name"),
    ],
)
def test_open_store_refuses_what_it_cannot_map(uri: str, message: str) -> None:
    with pytest.raises(StorageError, match=message):
        open_store(uri, CheckpointSettings())
