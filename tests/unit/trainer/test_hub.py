"""A Hugging Face Hub model id read from huggingface_hub's cache (offline: no hub is reachable from
tests), and which of a repository's files are fetched."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kubesft_api import exit_codes
from kubesft_trainer.model.hub import ignored_files
from kubesft_trainer.reporting.failure_report import ERROR_PREFIX
from testing.tinymodel import chat_rows, write_jsonl
from tests.support.trainer import last_stderr_line, run_trainer, trainer_config, write_config

pytestmark = pytest.mark.slow

REPO_ID = "kubesft-test/tiny-chat"

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def chat_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "chat.jsonl", chat_rows(40))


def _fill_hub_cache(hf_home: Path, model: Path) -> None:
    """The layout huggingface_hub leaves after downloading ``REPO_ID``: a snapshot per commit and
    the branch name pointing at it."""
    repo = hf_home / "hub" / f"models--{REPO_ID.replace('/', '--')}"
    shutil.copytree(model, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)


def test_a_hub_model_id_is_read_through_the_hub_cache(model: Path, chat_data: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    _fill_hub_cache(work / "hf", model)
    raw = trainer_config(model, chat_data, tmp_path / "out", training={"assistantOnlyLoss": True})
    raw["model"] = {"name": REPO_ID, "chatTemplate": "chatml"}
    result = run_trainer(write_config(tmp_path / "c.yaml", raw), work, "--validate", HF_TOKEN="hf_test")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"model: {REPO_ID};" in result.stdout
    assert f"model {REPO_ID}@main is in {work / 'hf' / 'hub'}" in result.stderr

    raw["model"]["revision"] = "v9"
    result = run_trainer(write_config(tmp_path / "r.yaml", raw), work, "--validate")
    assert result.returncode == exit_codes.MODEL_UNAVAILABLE, result.stderr[-3000:]
    line = last_stderr_line(result)
    assert line.startswith(ERROR_PREFIX)
    assert f"model.name: {REPO_ID}@v9: cannot download it from the Hugging Face Hub" in line
    assert "model.tokenSecret" in line, "without a token the message points at the likely cause"


def test_pickled_weights_are_skipped_only_when_safetensors_exist() -> None:
    with_safetensors = ignored_files(["config.json", "model.safetensors", "pytorch_model.bin"])
    assert "pytorch_model*.bin" in with_safetensors and "*.gguf" in with_safetensors
    assert "pytorch_model*.bin" not in ignored_files(["config.json", "pytorch_model.bin"])
    assert "pytorch_model*.bin" not in ignored_files(None)
