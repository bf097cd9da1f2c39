"""``--validate``: the checks a job passes on a CPU before it holds a GPU, on the tiny model and
moto's S3 server through the production code paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kubesft_api import exit_codes
from kubesft_api.trainer_config import TrainerConfig
from kubesft_api.validation_stage import REPORT_PREFIX, ValidationReport
from kubesft_trainer.config.runtime_env import RuntimeEnv
from kubesft_trainer.errors import ConfigError, DataError, ModelUnavailableError, StorageUnavailableError
from kubesft_trainer.validation.run import validate
from testing.tinymodel import chat_rows, prompt_completion_rows, write_jsonl
from tests.support.trainer import last_stderr_line, run_trainer, trainer_config, write_config

if TYPE_CHECKING:
    from tests.support.storage import MotoS3

pytest_plugins = ("tests.support.storage",)

ROWS = 40


@pytest.fixture(scope="module")
def chat_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "chat.jsonl", chat_rows(ROWS))


def _env(tmp_path: Path, **values: str) -> RuntimeEnv:
    return RuntimeEnv.from_environ({"KUBESFT_WORK_DIR": str(tmp_path / "work"), **values})


def _config(model_dir: Path, data: Path, tmp_path: Path, **sections: dict[str, Any]) -> TrainerConfig:
    """``trainer_config`` parsed, with ``sections`` replacing keys section by section."""
    raw = trainer_config(model_dir, data, tmp_path / "out")
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return TrainerConfig.model_validate(raw)


def test_good_data_reports_rows_lengths_loss_tokens_and_size(
    model: Path, chat_data: Path, tmp_path: Path
) -> None:
    config = _config(
        model,
        chat_data,
        tmp_path,
        training={"assistantOnlyLoss": True, "maxSteps": None, "epochs": 2, "perDeviceBatchSize": 4},
    )
    found = validate(config, _env(tmp_path, KUBESFT_NNODES="1", KUBESFT_NPROC_PER_NODE="2")).report
    assert (found.training_rows, found.examples, found.row_format) == (ROWS, ROWS, "messages")
    assert found.empty_loss_examples == 0 and found.truncated_fraction == 0.0
    assert 0 < found.tokens_p50 <= found.tokens_p95 <= found.tokens_max <= 128
    assert found.loss_tokens_per_epoch < found.tokens_per_epoch
    # 40 rows, 4 per device on 2 processes: 5 steps per epoch, 2 epochs.
    assert (found.steps_per_epoch, found.total_steps) == (5, 10)
    assert found.warnings == []
    assert not (tmp_path / "out").exists(), "the storage probe leaves nothing behind"


def test_max_length_that_cuts_every_answer_fails_naming_an_example(
    model: Path, chat_data: Path, tmp_path: Path
) -> None:
    config = _config(model, chat_data, tmp_path, training={"assistantOnlyLoss": True, "maxLength": 8})
    with pytest.raises(DataError) as failure:
        validate(config, _env(tmp_path))
    message = str(failure.value)
    assert (
        f"{ROWS} of {ROWS} training examples have no token in the loss within training.maxLength (8"
        in message
    )
    assert "validation.maxEmptyFraction (0)" in message
    assert "e.g. training example 0 ('Tell me" in message


def test_empty_examples_within_max_empty_fraction_pass_with_a_warning(model: Path, tmp_path: Path) -> None:
    rows = prompt_completion_rows(20)
    rows[3] = {"prompt": "Question: " + "what is one plus one? " * 30 + "\nAnswer:", "completion": " 2."}
    data = write_jsonl(tmp_path / "pc.jsonl", rows)
    config = _config(model, data, tmp_path, training={"maxLength": 32}, validation={"maxEmptyFraction": 0.1})
    found = validate(config, _env(tmp_path)).report
    assert found.empty_loss_examples == 1
    assert any("1 examples without loss tokens are dropped" in w for w in found.warnings), found.warnings
    strict = _config(model, data, tmp_path, training={"maxLength": 32})
    with pytest.raises(DataError, match=r"1 of 20 training examples .* e\.g\. training example 3"):
        validate(strict, _env(tmp_path))


def test_more_than_five_percent_truncated_is_a_warning(model: Path, chat_data: Path, tmp_path: Path) -> None:
    config = _config(model, chat_data, tmp_path, training={"maxLength": 40})
    found = validate(config, _env(tmp_path)).report
    assert found.truncated_fraction > 0.05
    assert any("longer than training.maxLength (40)" in w for w in found.warnings), found.warnings


def test_end_of_turn_outside_the_loss_fails_the_template(
    model: Path, chat_data: Path, tmp_path: Path
) -> None:
    template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['role'] == 'assistant' %}"
        "{% generation %}{{ m['content'] }}{% endgeneration %}<|im_end|>\n"
        "{% else %}{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
    )
    config = _config(
        model, chat_data, tmp_path, model={"chatTemplate": template}, training={"assistantOnlyLoss": True}
    )
    with pytest.raises(ConfigError) as failure:
        validate(config, _env(tmp_path))
    assert "model.chatTemplate: the end-of-turn token <|im_end|> is not in the loss of any example" in str(
        failure.value
    )


def test_a_model_uri_without_weights_is_unavailable(model: Path, chat_data: Path, tmp_path: Path) -> None:
    empty = tmp_path / "no-weights"
    empty.mkdir()
    (empty / "config.json").write_text((model / "config.json").read_text())
    config = _config(model, chat_data, tmp_path, model={"uri": str(empty), "chatTemplate": "chatml"})
    with pytest.raises(ModelUnavailableError, match=r"model\.uri: .* holds no weights"):
        validate(config, _env(tmp_path))


def _upload_folder(moto_s3: MotoS3, bucket: str, folder: Path, prefix: str) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            moto_s3.client().upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder)}")


def test_s3_model_is_read_without_its_weights_and_storage_is_probed(
    moto_s3: MotoS3, s3_bucket: str, model: Path, chat_data: Path, tmp_path: Path
) -> None:
    _upload_folder(moto_s3, s3_bucket, model, "models/tiny")
    config = _config(
        model,
        chat_data,
        tmp_path,
        model={"uri": f"s3://{s3_bucket}/models/tiny"},
        checkpoints={"uri": f"s3://{s3_bucket}/ckpt", "endpointUrl": moto_s3.endpoint_url},
        output={"uri": f"s3://{s3_bucket}/out"},
    )
    validated = validate(config, _env(tmp_path))
    assert validated.model == f"s3://{s3_bucket}/models/tiny"
    cached = sorted(p.name for p in (tmp_path / "work").rglob("*") if p.is_file())
    assert "tokenizer.json" in cached and "config.json" in cached
    assert "model.safetensors" not in cached, "validation downloads no weights"
    listing = moto_s3.client().list_objects_v2(Bucket=s3_bucket)
    keys = [item["Key"] for item in listing.get("Contents", [])]
    assert not [k for k in keys if k.startswith(("ckpt/", "out/"))], "the probes are deleted"


def test_output_in_a_bucket_that_does_not_exist_is_storage_unavailable(
    moto_s3: MotoS3, s3_bucket: str, model: Path, chat_data: Path, tmp_path: Path
) -> None:
    config = _config(
        model,
        chat_data,
        tmp_path,
        checkpoints={"endpointUrl": moto_s3.endpoint_url},
        output={"uri": "s3://no-such-bucket-kubesft/out"},
    )
    with pytest.raises(StorageUnavailableError) as failure:
        validate(config, _env(tmp_path))
    message = str(failure.value)
    assert message.startswith("output.uri: cannot write to s3://no-such-bucket-kubesft/out:")
    assert "does not exist" in message


def test_validate_from_the_command_line_prints_the_figures_and_fails_the_same_way(
    model: Path, chat_data: Path, tmp_path: Path
) -> None:
    good = trainer_config(model, chat_data, tmp_path / "out", training={"assistantOnlyLoss": True})
    result = run_trainer(write_config(tmp_path / "good.yaml", good), tmp_path / "work", "--validate")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"data: {ROWS} training rows (messages); tokens per example p50" in result.stdout
    (line,) = [line for line in result.stdout.splitlines() if line.startswith(REPORT_PREFIX)]
    report = ValidationReport.model_validate(json.loads(line.removeprefix(REPORT_PREFIX)))
    assert report.training_rows == ROWS and report.steps_per_epoch == 5

    cut = trainer_config(
        model, chat_data, tmp_path / "out", training={"assistantOnlyLoss": True, "maxLength": 8}
    )
    result = run_trainer(write_config(tmp_path / "cut.yaml", cut), tmp_path / "work", "--validate")
    assert result.returncode == exit_codes.INVALID_DATA
    assert "training examples have no token in the loss" in last_stderr_line(result)
