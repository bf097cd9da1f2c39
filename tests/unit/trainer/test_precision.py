"""Training precision and weight dtypes: the choice per GPU, float32 master weights for full
fine-tuning whatever dtype the checkpoint was saved in, a low-precision LoRA base."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubesft_api.lora import LoraSettings
from kubesft_api.model import ModelSource
from kubesft_api.trainer_config import TrainerConfig
from kubesft_trainer.config.precision import (
    Precision,
    precision_warning,
    pure_low_precision_warning,
    resolved_precision,
    weights_dtype,
)
from kubesft_trainer.config.runtime_env import RuntimeEnv
from kubesft_trainer.errors import ConfigError
from kubesft_trainer.model.lora import quantization_config
from testing.tinymodel import chat_rows, write_jsonl
from tests.support.trainer import trainer_config

FULL, ADAPTER = LoraSettings(), LoraSettings(enabled=True)


def test_auto_is_bf16_only_with_native_bf16_fp16_on_older_gpus_and_fp32_on_cpu() -> None:
    # (setting, CUDA available, compute capability) -> precision
    cases = [
        ("auto", True, (9, 0), "bf16"),  # H100
        ("auto", True, (8, 0), "bf16"),  # A100
        ("auto", True, (7, 5), "fp16"),  # T4: bf16 only emulated
        ("auto", True, (7, 0), "fp16"),  # V100
        ("auto", False, None, "fp32"),
        ("fp32", True, (8, 0), "fp32"),
        ("bf16", True, (7, 5), "bf16"),  # asked for: kept, with a warning
        ("fp16", True, (8, 6), "fp16"),
    ]
    for setting, cuda, capability, expected in cases:
        assert resolved_precision(setting, cuda, capability) == expected, (setting, cuda, capability)
    with pytest.raises(ConfigError, match=r"training.precision: fp16 needs a CUDA GPU"):
        resolved_precision("fp16", False, None)
    warning = precision_warning("bf16", True, (7, 5))
    assert warning is not None and "compute capability 7.5 is emulated" in warning
    assert precision_warning("bf16", True, (8, 0)) is None
    assert precision_warning("auto", True, (7, 5)) is None


def test_qlora_computes_in_the_chosen_precision() -> None:
    import torch

    qlora = LoraSettings(enabled=True, quantization="4bit")
    choices: list[tuple[Precision, torch.dtype]] = [
        ("bf16", torch.bfloat16),
        ("fp16", torch.float16),
        ("fp32", torch.float32),
    ]
    for precision, dtype in choices:
        config = quantization_config(qlora, precision)
        assert config is not None and config.bnb_4bit_compute_dtype == dtype
    assert quantization_config(ADAPTER, "bf16") is None


def test_full_fine_tuning_loads_float32_a_lora_base_the_compute_dtype_an_explicit_dtype_as_set() -> None:
    auto = ModelSource(name="m")
    assert [weights_dtype(auto, FULL, p) for p in ("bf16", "fp16", "fp32")] == ["float32"] * 3
    assert [weights_dtype(auto, ADAPTER, p) for p in ("bf16", "fp16", "fp32")] == [
        "bfloat16",
        "float16",
        "float32",
    ]
    explicit = ModelSource(name="m", dtype="bfloat16")
    assert weights_dtype(explicit, FULL, "bf16") == "bfloat16"
    warning = pure_low_precision_warning(explicit, FULL)
    assert warning is not None and "trains purely in bfloat16" in warning
    assert pure_low_precision_warning(explicit, ADAPTER) is None
    assert pure_low_precision_warning(auto, FULL) is None
    with pytest.raises(
        ConfigError, match=r"model.dtype: float16 weights cannot train with fp16 loss scaling"
    ):
        weights_dtype(ModelSource(name="m", dtype="float16"), FULL, "fp16")


def _saved_in(model: Path, directory: Path, dtype: str) -> Path:
    """The tiny model's weights rounded to bfloat16, saved in ``dtype``: the same values either way."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rounded: Any = AutoModelForCausalLM.from_pretrained(model)
    rounded = rounded.to(torch.bfloat16).to(getattr(torch, dtype))
    rounded.save_pretrained(directory)
    AutoTokenizer.from_pretrained(model).save_pretrained(directory)
    return directory


def _losses(model: Path, data: Path, tmp_path: Path, **model_fields: str) -> tuple[list[float], str]:
    """Train 40 steps at the default learning rate, 2e-5, in-process through ``prepare``; the logged
    losses and the weights' dtype."""
    from kubesft_trainer.train import prepare

    raw = trainer_config(
        model,
        data,
        tmp_path / "out",
        training={"maxSteps": 40, "learningRate": 2e-5, "loggingSteps": 1, "lrScheduler": "constant"},
    )
    raw["model"].update(model_fields)
    env = RuntimeEnv.from_environ({"KUBESFT_WORK_DIR": str(tmp_path / "work")})
    run = prepare(TrainerConfig.model_validate(raw), env, tmp_path / "ckpt", callbacks=[], progress_bar=False)
    run.trainer.train()
    dtype = str(next(run.trainer.model.parameters()).dtype)
    return [float(entry["loss"]) for entry in run.trainer.state.log_history if "loss" in entry], dtype


@pytest.mark.slow
def test_a_bf16_checkpoint_trains_like_its_float32_copy(model: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(96))
    bf16 = _saved_in(model, tmp_path / "bf16", "bfloat16")
    fp32 = _saved_in(model, tmp_path / "fp32", "float32")

    reference, reference_dtype = _losses(fp32, data, tmp_path / "a")
    auto, auto_dtype = _losses(bf16, data, tmp_path / "b")
    pure, pure_dtype = _losses(bf16, data, tmp_path / "c", dtype="bfloat16")
    assert (reference_dtype, auto_dtype, pure_dtype) == ("torch.float32", "torch.float32", "torch.bfloat16")
    assert len(reference) == len(auto) == 40
    # Same starting values, both trained with float32 weights on the CPU: the runs are the same run.
    # 1e-5 leaves room only for float32 rounding; a step of pure bf16 training moves the loss by more.
    assert auto == pytest.approx(reference, abs=1e-5)
    # The old behaviour, kept for an explicit model.dtype: most of the small updates round away
    # (measured here: 0.40 of the float32 run's drop in loss).
    lowered = reference[0] - reference[-1]
    assert lowered > 0.1
    assert pure[0] - pure[-1] < 0.6 * lowered, (pure[0] - pure[-1], lowered)
