"""TRL's SFTConfig from the spec's training section, plus extraArgs checked against the installed TRL."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubesft_api.sft_config_fields import extra_args_problems
from kubesft_api.trainer_config import TrainerConfig
from kubesft_trainer.config.precision import Precision, precision_flags
from kubesft_trainer.errors import ConfigError

if TYPE_CHECKING:
    from trl import SFTConfig


def installed_sft_fields() -> set[str]:
    """SFTConfig's argument names in the TRL this process runs (which may differ from the spec's list)."""
    from trl import SFTConfig

    return {f.name for f in dataclasses.fields(SFTConfig) if f.init}


def check_extra_args(extra_args: dict[str, Any], installed: set[str]) -> None:
    """Refuse names TRL does not know and names kubesft derives from the spec, listing all of them."""
    import trl

    problems = extra_args_problems(extra_args, installed, trl.__version__)
    if problems:
        raise ConfigError(
            "; ".join(f"training.extraArgs.{name}: {problem}" for name, problem in problems.items())
        )


def _checkpointing_name(installed: set[str]) -> str:
    # transformers 5 renamed gradient_checkpointing; the old name still works but warns.
    return "activation_checkpointing" if "activation_checkpointing" in installed else "gradient_checkpointing"


def sft_kwargs(
    config: TrainerConfig,
    output_dir: Path,
    has_eval: bool,
    progress_bar: bool,
    installed: set[str],
    cuda: bool,
    precision: Precision,
    tuned: dict[str, Any] | None = None,
    sharding: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The SFTConfig arguments for this spec, then ``tuned`` (``tuning.tuned_sft_defaults``), then
    extraArgs, which may override everything the spec does not set. ``sharding`` holds the FSDP
    arguments (``sharding.fsdp_sft_kwargs``) of a sharded run."""
    training, checkpoints = config.training, config.checkpoints
    check_extra_args(training.extra_args, installed)
    kwargs: dict[str, Any] = {
        "output_dir": str(output_dir),
        "num_train_epochs": training.epochs,
        "max_steps": training.max_steps if training.max_steps is not None else -1,
        "learning_rate": training.learning_rate,
        "lr_scheduler_type": training.lr_scheduler,
        # transformers 5 reads a warmup_steps below 1 as a share of all steps
        "warmup_steps": float(training.warmup_ratio),
        "per_device_train_batch_size": training.per_device_batch_size,
        "per_device_eval_batch_size": training.per_device_batch_size,
        "gradient_accumulation_steps": training.gradient_accumulation_steps,
        "max_length": training.max_length,
        "packing": training.packing,
        "padding_free": training.padding_free,
        "assistant_only_loss": training.assistant_only_loss,
        "completion_only_loss": training.completion_only_loss,
        _checkpointing_name(installed): training.gradient_checkpointing,
        **precision_flags(precision),
        "seed": training.seed,
        "data_seed": training.seed,
        "logging_steps": training.logging_steps,
        "eval_strategy": "steps" if has_eval else "no",
        "eval_steps": training.eval_steps,
        # Several sets are read against their loss before training: a baseline at step 0.
        "eval_on_start": has_eval and bool(config.dataset.eval_sets),
        "save_strategy": "steps",
        "save_steps": checkpoints.save_steps,
        "save_total_limit": checkpoints.keep,
        "report_to": "none",
        "dataloader_pin_memory": cuda,
        # Without it accelerate runs each CPU process on its own instead of as one DDP group.
        "use_cpu": not cuda,
        "disable_tqdm": not progress_bar,
        "dataset_text_field": "text",
        "trust_remote_code": config.model.trust_remote_code,
    }
    if sharding:
        kwargs.update(sharding)
        # FSDP checkpoints activations itself (fsdp_config); the Trainer's would gather layers twice.
        kwargs[_checkpointing_name(installed)] = False
    kwargs.update(tuned or {})
    kwargs.update(training.extra_args)
    return kwargs


def build_sft_config(kwargs: dict[str, Any]) -> SFTConfig:
    from trl import SFTConfig

    try:
        return SFTConfig(**kwargs)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"training: TRL refused the settings: {error}") from error
