"""``kubesft download``: a Succeeded job's output from S3 with a local credential, or why not."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from kubesft.download import download_output
from kubesft.errors import DownloadError
from kubesft.job import SFTJob
from tests.unit.cli.conftest import Cli
from tests.unit.cli.fake_api import SFTJOBS, Answer, FakeApi, sftjob

JOBS = SFTJOBS.format(ns="team")


def finished(
    output: str = "s3://bucket/out", endpoint: str | None = None, phase: str = "Succeeded"
) -> dict[str, Any]:
    body = sftjob(phase=phase, outputUri=output)
    body["spec"]["output"] = {"uri": output}
    body["spec"]["checkpoints"] = {"endpointUrl": endpoint} if endpoint else {}
    return body


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's in-process S3 with a credential in the environment, as a person's shell has one."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="bucket")
        yield client


def test_every_object_under_the_output_is_copied(cli: Cli, api: FakeApi, s3: Any, tmp_path: Path) -> None:
    for key, body in (
        ("out/model.safetensors", b"x" * 1000),
        ("out/tokenizer/vocab.json", b"{}"),
        ("outside", b"-"),
    ):
        s3.put_object(Bucket="bucket", Key=key, Body=body)
    api.on("GET", f"{JOBS}/smol", Answer(200, finished()))
    target = tmp_path / "model"
    result = cli("download", "smol", str(target))
    assert result.code == 0, result.err
    assert (target / "model.safetensors").read_bytes() == b"x" * 1000
    assert (target / "tokenizer" / "vocab.json").read_text() == "{}"
    assert sorted(p.name for p in target.rglob("*") if p.is_file()) == ["model.safetensors", "vocab.json"]
    assert (
        result.out
        == f"       1,000  model.safetensors\n           2  tokenizer/vocab.json\ndownloaded 2 files to {target}\n"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            finished(phase="Running"),
            "SFTJob smol has not succeeded (phase Running); its model is written to s3://bucket/out when training finishes",
        ),
        (
            finished("pvc://models/smol"),
            "the output of SFTJob smol (pvc://models/smol) is on PersistentVolumeClaim models: it cannot be "
            "downloaded from here; copy it from a pod that mounts the claim",
        ),
        (
            finished("/mnt/models/smol"),
            "the output of SFTJob smol (/mnt/models/smol) is a path on the trainer's node: it cannot be "
            "downloaded from here",
        ),
    ],
)
def test_outputs_that_cannot_be_downloaded_from_here(
    cli: Cli, api: FakeApi, tmp_path: Path, body: dict[str, Any], message: str
) -> None:
    api.on("GET", f"{JOBS}/smol", Answer(200, body))
    result = cli("download", "smol", str(tmp_path))
    assert (result.code, result.err) == (1, f"kubesft: error: {message}\n")


def test_nothing_under_the_output(cli: Cli, api: FakeApi, s3: Any, tmp_path: Path) -> None:
    api.on("GET", f"{JOBS}/smol", Answer(200, finished()))
    assert cli("download", "smol", str(tmp_path)).err == (
        "kubesft: error: nothing to download: there are no objects under s3://bucket/out\n"
    )


def test_a_bucket_storage_refuses(cli: Cli, api: FakeApi, s3: Any, tmp_path: Path) -> None:
    api.on("GET", f"{JOBS}/smol", Answer(200, finished("s3://other-bucket/out")))
    assert cli("download", "smol", str(tmp_path)).err == (
        "kubesft: error: object storage refused to read s3://other-bucket/out: NoSuchBucket: "
        "The specified bucket does not exist\n"
    )


def test_no_local_credential(cli: Cli, api: FakeApi, tmp_path: Path) -> None:
    api.on("GET", f"{JOBS}/smol", Answer(200, finished(endpoint="http://127.0.0.1:9")))
    assert cli("download", "smol", str(tmp_path)).err == (
        "kubesft: error: no AWS credentials to read s3://bucket/out: set AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE\n"
    )


def test_storage_that_does_not_answer(
    cli: Cli, api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    api.on("GET", f"{JOBS}/smol", Answer(200, finished(endpoint="http://127.0.0.1:9")))
    line = cli("download", "smol", str(tmp_path)).err
    assert line.startswith(
        "kubesft: error: cannot reach object storage at http://127.0.0.1:9 to read s3://bucket/out: "
        'Could not connect to the endpoint URL: "http://127.0.0.1:9/bucket?'
    ), line
    assert line.count("\n") == 1


class _Listing:
    def __init__(self, keys: list[str]) -> None:
        self.keys = keys

    def get_paginator(self, name: str) -> Any:
        keys = self.keys

        class Paginator:
            def paginate(self, **kwargs: Any) -> list[dict[str, Any]]:
                return [{"Contents": [{"Key": key, "Size": 1} for key in keys]}]

        return Paginator()

    def download_file(self, bucket: str, key: str, target: str) -> None:
        Path(target).write_text(key)


def test_a_key_that_would_escape_the_folder(tmp_path: Path) -> None:
    job = SFTJob.from_dict(finished())
    with pytest.raises(DownloadError) as refused:
        download_output(job, tmp_path / "model", s3_client=_Listing(["out/ok", "out/../../escape"]))
    assert (
        str(refused.value)
        == f"object out/../../escape of s3://bucket/out would be written outside {tmp_path}/model"
    )
    assert not (tmp_path / "escape").exists()


def test_without_boto3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(DownloadError, match=r"^download needs boto3: pip install 'kubesft\[cli\]'$"):
        download_output(SFTJob.from_dict(finished()), tmp_path)
