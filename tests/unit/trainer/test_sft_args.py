"""The SFTConfig the trainer builds from the spec: extraArgs checked against the installed TRL."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubesft_api.trainer_config import TrainerConfig
from kubesft_trainer.config.sft_args import (
    build_sft_config,
    check_extra_args,
    installed_sft_fields,
    sft_kwargs,
)
from kubesft_trainer.errors import ConfigError
from tests.support.trainer import parsed_config


def kwargs_for(
    cfg: TrainerConfig, installed: set[str] | None = None, cuda: bool = False
) -> dict[str, object]:
    return sft_kwargs(
        cfg,
        output_dir=Path("/tmp/x"),
        has_eval=False,
        progress_bar=False,
        installed=installed or installed_sft_fields(),
        cuda=cuda,
        precision="bf16" if cuda else "fp32",
    )


def test_unknown_extra_arg_is_named_with_the_closest_valid_names() -> None:
    # The spec checks names against the TRL it was generated from; the trainer checks the TRL it runs.
    installed = installed_sft_fields() - {"weight_decay", "adam_beta1"}
    with pytest.raises(ConfigError) as caught:
        kwargs_for(
            parsed_config(extraArgs={"weight_decay": 0.1, "adam_beta1": 0.8, "adam_beta2": 0.9}), installed
        )
    message = str(caught.value)
    assert "training.extraArgs.weight_decay: not an SFTConfig argument of TRL" in message
    assert "training.extraArgs.adam_beta1: not an SFTConfig argument of TRL" in message
    assert "did you mean adam_beta2" in message
    assert "adam_beta2:" not in message


def test_sft_config_from_the_spec() -> None:
    cfg = parsed_config(warmupRatio=0.1, extraArgs={"weight_decay": 0.05, "report_to": "tensorboard"})
    args = build_sft_config(kwargs_for(cfg))
    assert args.max_steps == 12 and args.learning_rate == 1e-3
    assert args.warmup_steps == pytest.approx(0.1)
    assert args.get_warmup_steps(100) == 10
    assert args.bf16 is False and args.fp16 is False
    assert args.use_cpu is True
    assert args.activation_checkpointing is False
    assert args.weight_decay == 0.05
    assert args.report_to == ["tensorboard"], "extraArgs override kubesft's own defaults"
    assert args.save_strategy == "steps" and args.save_steps == 1000
    assert args.eval_strategy == "no"


def test_extra_args_that_would_break_resume_or_the_output_layout_are_refused_naming_them() -> None:
    refused = [
        "save_only_model",
        "ignore_data_skip",
        "save_strategy",
        "save_total_limit",
        "resume_from_checkpoint",
        "overwrite_output_dir",
    ]
    # The spec refuses them too; the trainer checks the names against the TRL it runs.
    with pytest.raises(ConfigError) as caught:
        check_extra_args(dict.fromkeys(refused, True), installed_sft_fields())
    for name in refused:
        assert f"training.extraArgs.{name}: refused: " in str(caught.value)
    assert "cannot resume exactly" in str(caught.value)
