"""s3:// model and dataset URIs downloaded from moto's S3 server with the same boto3 code that
talks to AWS, once per pod."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kubesft_api import exit_codes
from testing.tinymodel import chat_rows, write_jsonl
from tests.support.trainer import last_stderr_line, run_trainer, trainer_config, write_config

if TYPE_CHECKING:
    from tests.support.storage import MotoS3

pytest_plugins = ("tests.support.storage",)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chat_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "chat.jsonl", chat_rows(40))


def _upload_folder(moto_s3: MotoS3, bucket: str, folder: Path, prefix: str) -> None:
    client = moto_s3.client()
    for path in folder.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder)}")


def test_s3_model_and_dataset_are_downloaded_to_the_cache_once(
    moto_s3: MotoS3, s3_bucket: str, model: Path, chat_data: Path, tmp_path: Path
) -> None:
    _upload_folder(moto_s3, s3_bucket, model, "models/tiny")
    moto_s3.client().upload_file(str(chat_data), s3_bucket, "data/chat.jsonl")
    raw = trainer_config(model, chat_data, tmp_path / "out", training={"assistantOnlyLoss": True})
    raw["model"]["uri"] = f"s3://{s3_bucket}/models/tiny"
    raw["dataset"]["uri"] = f"s3://{s3_bucket}/data/chat.jsonl"
    raw["checkpoints"]["endpointUrl"] = moto_s3.endpoint_url
    config = write_config(tmp_path / "c.yaml", raw)
    work = tmp_path / "work"

    first = run_trainer(config, work, "--validate")
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"model: s3://{s3_bucket}/models/tiny;" in first.stdout and "40 training rows" in first.stdout
    # --validate reads the model's tokenizer and config only; the dataset goes to the cache.
    assert first.stderr.count("downloading s3://") == 1
    cached = sorted(p.name for p in (work / "cache").rglob("*") if p.is_file())
    assert "chat.jsonl" in cached and "tokenizer.json" in cached and "model.safetensors" not in cached

    again = run_trainer(config, work, "--validate")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "downloading s3://" not in again.stderr and again.stderr.count("using the cached copy") == 1

    raw["dataset"]["uri"] = f"s3://{s3_bucket}/data/missing.jsonl"
    missing = run_trainer(write_config(tmp_path / "m.yaml", raw), work, "--validate")
    assert missing.returncode == exit_codes.INVALID_DATA
    assert f"dataset.uri: s3://{s3_bucket}/data/missing.jsonl does not exist" in last_stderr_line(missing)
