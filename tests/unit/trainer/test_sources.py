"""Model and data sources through the production path: a Hugging Face Hub id read from
huggingface_hub's cache (offline: no hub is reachable from tests), and s3:// URIs downloaded from
moto's S3 server with the same boto3 code that talks to AWS."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kubesft_api import exit_codes
from kubesft_trainer.model.hub import ignored_files
from kubesft_trainer.reporting.failure_report import ERROR_PREFIX
from testing.tinymodel import chat_rows, write_jsonl
from tests.support.trainer import last_stderr_line, run_trainer, tiny_model, trainer_config, write_config

if TYPE_CHECKING:
    from tests.support.storage import MotoS3

pytest_plugins = ("tests.support.storage",)
pytestmark = pytest.mark.slow

REPO_ID = "kubesft-test/tiny-chat"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.getbasetemp())


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
    assert result.returncode == exit_codes.INVALID_DATA, result.stderr[-3000:]
    line = last_stderr_line(result)
    assert line.startswith(ERROR_PREFIX)
    assert f"model.name: {REPO_ID}@v9: cannot download it from the Hugging Face Hub" in line
    assert "model.tokenSecret" in line, "without a token the message points at the likely cause"


def test_pickled_weights_are_skipped_only_when_safetensors_exist() -> None:
    with_safetensors = ignored_files(["config.json", "model.safetensors", "pytorch_model.bin"])
    assert "pytorch_model*.bin" in with_safetensors and "*.gguf" in with_safetensors
    assert "pytorch_model*.bin" not in ignored_files(["config.json", "pytorch_model.bin"])
    assert "pytorch_model*.bin" not in ignored_files(None)


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
    assert first.stderr.count("downloading s3://") == 2
    cached = sorted(p.name for p in (work / "cache").rglob("*") if p.is_file())
    assert "chat.jsonl" in cached and "model.safetensors" in cached and "tokenizer.json" in cached

    again = run_trainer(config, work, "--validate")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "downloading s3://" not in again.stderr and again.stderr.count("using the cached copy") == 2

    raw["dataset"]["uri"] = f"s3://{s3_bucket}/data/missing.jsonl"
    missing = run_trainer(write_config(tmp_path / "m.yaml", raw), work, "--validate")
    assert missing.returncode == exit_codes.INVALID_DATA
    assert f"dataset.uri: s3://{s3_bucket}/data/missing.jsonl does not exist" in last_stderr_line(missing)


def test_the_models_own_template_is_kept_an_inline_one_used_and_dtype_honoured(
    model: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    from kubesft_api.model import ModelSource
    from kubesft_trainer.model.loading import ModelLocation, load_model, load_tokenizer, prepare_tokenizer

    own = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    chat_model = tmp_path / "chat-model"
    shutil.copytree(model, chat_model)
    tokenizer = AutoTokenizer.from_pretrained(chat_model)
    tokenizer.chat_template = own
    tokenizer.save_pretrained(chat_model)
    location = ModelLocation(path=str(chat_model), field="model.uri", description=str(chat_model))
    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]

    kept = load_tokenizer(ModelSource(uri=str(chat_model)), location)
    setup = prepare_tokenizer(kept, ModelSource(uri=str(chat_model)))
    assert kept.chat_template == own and setup.eos_token is None
    assert str(kept.apply_chat_template(conversation, tokenize=False)).startswith(
        "<|im_start|>user\nhi<|im_end|>"
    )

    inline = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    source = ModelSource.model_validate({"uri": str(chat_model), "chatTemplate": inline})
    replaced = load_tokenizer(source, location)
    prepare_tokenizer(replaced, source)
    assert replaced.apply_chat_template(conversation, tokenize=False) == "user: hi\nassistant: hello\n"

    import torch

    for dtype, expected in (("bfloat16", torch.bfloat16), ("float32", torch.float32)):
        source = ModelSource(uri=str(chat_model), dtype=dtype)
        assert load_model(source, location, replaced).dtype == expected


def _model_with_its_own_code(model: Path, directory: Path) -> Path:
    """The tiny model as a hub repository with custom code would ship it: ``auto_map`` classes."""
    shutil.copytree(model, directory)
    (directory / "configuration_tiny.py").write_text(
        "from transformers import LlamaConfig\n\n\nclass TinyConfig(LlamaConfig):\n"
        '    model_type = "kubesft-tiny"\n'
    )
    (directory / "modeling_tiny.py").write_text(
        "from transformers import LlamaForCausalLM\n\nfrom .configuration_tiny import TinyConfig\n\n\n"
        "class TinyForCausalLM(LlamaForCausalLM):\n    config_class = TinyConfig\n"
    )
    config = json.loads((directory / "config.json").read_text())
    config.update(
        model_type="kubesft-tiny",
        architectures=["TinyForCausalLM"],
        auto_map={
            "AutoConfig": "configuration_tiny.TinyConfig",
            "AutoModelForCausalLM": "modeling_tiny.TinyForCausalLM",
        },
    )
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def test_a_model_with_its_own_code_loads_only_with_trust_remote_code(
    model: Path, chat_data: Path, tmp_path: Path
) -> None:
    custom = _model_with_its_own_code(model, tmp_path / "custom-model")
    raw = trainer_config(custom, chat_data, tmp_path / "out")
    refused = run_trainer(write_config(tmp_path / "refused.yaml", raw), tmp_path / "work", "--validate")
    assert refused.returncode == exit_codes.INVALID_DATA, refused.stderr[-3000:]
    line = last_stderr_line(refused)
    assert f"model.uri: the model of {custom} needs its own Python code to load" in line
    assert "model.trustRemoteCode: true" in line

    raw["model"]["trustRemoteCode"] = True
    trusted = run_trainer(write_config(tmp_path / "trusted.yaml", raw), tmp_path / "work", "--validate")
    assert trusted.returncode == 0, trusted.stderr[-3000:]
    # The class came from the model's own file, run as transformers runs remote code.
    modules = tmp_path / "work" / "hf" / "modules" / "transformers_modules"
    assert list(modules.rglob("modeling_tiny.py")), "the model's code was not loaded"
