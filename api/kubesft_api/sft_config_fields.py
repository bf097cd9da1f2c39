"""TRL SFTConfig's argument names, so specs are checked without importing TRL.

The list is generated from the installed TRL by ``make crds``; a test fails when it drifts.
The trainer checks again against the TRL it actually runs.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable

# BEGIN GENERATED FIELDS (TRL 1.16.0; make crds regenerates)
SFT_CONFIG_TRL_VERSION = "1.16.0"
SFT_CONFIG_FIELDS: frozenset[str] = frozenset(
    (
        "accelerator_config",
        "activation_checkpointing",
        "activation_checkpointing_kwargs",
        "activation_offloading",
        "adam_beta1",
        "adam_beta2",
        "adam_epsilon",
        "assistant_only_loss",
        "auto_find_batch_size",
        "average_tokens_across_devices",
        "batch_eval_metrics",
        "bf16",
        "bf16_full_eval",
        "chat_template_path",
        "completion_only_loss",
        "data_seed",
        "dataloader_drop_last",
        "dataloader_in_order",
        "dataloader_multiprocessing_context",
        "dataloader_num_workers",
        "dataloader_persistent_workers",
        "dataloader_pin_memory",
        "dataloader_prefetch_factor",
        "dataset_kwargs",
        "dataset_num_proc",
        "dataset_text_field",
        "ddp_backend",
        "ddp_broadcast_buffers",
        "ddp_bucket_cap_mb",
        "ddp_find_unused_parameters",
        "ddp_static_graph",
        "ddp_timeout",
        "debug",
        "deepspeed",
        "disable_tqdm",
        "do_eval",
        "do_predict",
        "do_train",
        "enable_jit_checkpoint",
        "eos_token",
        "eval_accumulation_steps",
        "eval_delay",
        "eval_do_concat_batches",
        "eval_on_start",
        "eval_packing",
        "eval_steps",
        "eval_strategy",
        "eval_use_gather_object",
        "fp16",
        "fp16_full_eval",
        "fsdp",
        "fsdp_config",
        "full_determinism",
        "gradient_accumulation_steps",
        "gradient_checkpointing",
        "gradient_checkpointing_kwargs",
        "greater_is_better",
        "hub_always_push",
        "hub_model_id",
        "hub_private_repo",
        "hub_revision",
        "hub_strategy",
        "hub_token",
        "ignore_data_skip",
        "include_for_metrics",
        "include_num_input_tokens_seen",
        "label_names",
        "label_smoothing_factor",
        "learning_rate",
        "length_column_name",
        "liger_kernel_config",
        "load_best_model_at_end",
        "local_rank",
        "log_level",
        "log_level_replica",
        "log_on_each_node",
        "logging_first_step",
        "logging_nan_inf_filter",
        "logging_steps",
        "logging_strategy",
        "loss_type",
        "lr_scheduler_kwargs",
        "lr_scheduler_type",
        "max_grad_norm",
        "max_length",
        "max_steps",
        "metric_for_best_model",
        "model_init_kwargs",
        "neftune_noise_alpha",
        "num_train_epochs",
        "optim",
        "optim_args",
        "optim_target_modules",
        "output_dir",
        "packing",
        "packing_strategy",
        "pad_to_multiple_of",
        "pad_token",
        "padding_free",
        "parallelism_config",
        "per_device_eval_batch_size",
        "per_device_train_batch_size",
        "prediction_loss_only",
        "project",
        "push_to_hub",
        "remove_unused_columns",
        "report_to",
        "restore_callback_states_from_checkpoint",
        "resume_from_checkpoint",
        "router_aux_loss_coef",
        "run_name",
        "save_on_each_node",
        "save_only_model",
        "save_steps",
        "save_strategy",
        "save_total_limit",
        "seed",
        "shuffle_dataset",
        "skip_memory_metrics",
        "tf32",
        "torch_compile",
        "torch_compile_backend",
        "torch_compile_mode",
        "torch_empty_cache_steps",
        "trackio_bucket_id",
        "trackio_space_id",
        "trackio_static_space_id",
        "train_sampling_strategy",
        "truncation_mode",
        "trust_remote_code",
        "use_cache",
        "use_cpu",
        "use_liger_kernel",
        "warmup_steps",
        "weight_decay",
    )
)
# END GENERATED FIELDS

MANAGED_SFT_CONFIG_FIELDS: dict[str, str] = {
    "output_dir": "spec.output.uri",
    "num_train_epochs": "spec.training.epochs",
    "max_steps": "spec.training.maxSteps",
    "learning_rate": "spec.training.learningRate",
    "lr_scheduler_type": "spec.training.lrScheduler",
    "warmup_steps": "spec.training.warmupRatio",
    "per_device_train_batch_size": "spec.training.perDeviceBatchSize",
    "gradient_accumulation_steps": "spec.training.gradientAccumulationSteps",
    "max_length": "spec.training.maxLength",
    "packing": "spec.training.packing",
    "padding_free": "spec.training.paddingFree",
    "assistant_only_loss": "spec.training.assistantOnlyLoss",
    "completion_only_loss": "spec.training.completionOnlyLoss",
    "gradient_checkpointing": "spec.training.gradientCheckpointing",
    "activation_checkpointing": "spec.training.gradientCheckpointing",
    "bf16": "spec.training.precision",
    "fp16": "spec.training.precision",
    "seed": "spec.training.seed",
    "logging_steps": "spec.training.loggingSteps",
    "eval_steps": "spec.training.evalSteps",
    "eval_strategy": "spec.dataset.evalSplit or spec.dataset.evalFraction",
    "eval_on_start": "spec.dataset.evalSets (each set's baseline at step 0)",
    "save_steps": "spec.checkpoints.saveSteps",
    "save_strategy": "spec.checkpoints.saveSteps",
    "save_total_limit": "spec.checkpoints.keep",
    "resume_from_checkpoint": "spec.checkpoints.resume",
    "trust_remote_code": "spec.model.trustRemoteCode",
    "chat_template_path": "spec.model.chatTemplate",
    "dataset_text_field": "spec.dataset.textField",
    "push_to_hub": "spec.output.uri",
    "hub_token": "spec.model.tokenSecret",
    "local_rank": "spec.resources (set by torchrun)",
    "fsdp": "spec.training.sharding",
    "fsdp_config": "spec.training.sharding",
    "parallelism_config": "spec.training.sharding",
}
"""SFTConfig arguments kubesft derives from the spec, with the spec field to use instead."""

REFUSED_SFT_CONFIG_FIELDS: dict[str, str] = {
    "save_only_model": "checkpoints without the optimizer, scheduler and RNG states cannot resume exactly",
    "ignore_data_skip": "a resumed run would train on the data it already saw",
    "save_strategy": "kubesft saves every spec.checkpoints.saveSteps steps and uploads each save",
    "save_total_limit": "kubesft keeps spec.checkpoints.keep checkpoints in storage",
    "resume_from_checkpoint": "kubesft resumes by spec.checkpoints.resume, or warm-starts from spec.checkpoints.resumeFrom",
    "overwrite_output_dir": "kubesft owns the local output folder and writes spec.output.uri",
}
"""SFTConfig arguments (or arguments of older TRL) that would break resume or the output layout,
with why. They are refused before the managed or unknown checks, so the reason is the one shown."""


def closest_field_names(name: str, limit: int = 3, candidates: Iterable[str] | None = None) -> list[str]:
    """SFTConfig argument names (or ``candidates``) that look like ``name``, best first."""
    names = sorted(SFT_CONFIG_FIELDS if candidates is None else candidates)
    return difflib.get_close_matches(name, names, n=limit, cutoff=0.6)


def extra_args_problems(
    names: Iterable[str], known: Collection[str] = SFT_CONFIG_FIELDS, trl_version: str | None = None
) -> dict[str, str]:
    """What keeps each of the extraArgs ``names`` from SFTConfig, by name: it would break resume or
    the output layout, kubesft sets it from the spec, or SFTConfig (whose arguments are ``known``,
    those of TRL ``trl_version``) has no such one.
    """
    problems = {}
    for name in sorted(names):
        if name in REFUSED_SFT_CONFIG_FIELDS:
            problems[name] = f"refused: {REFUSED_SFT_CONFIG_FIELDS[name]}"
        elif name in MANAGED_SFT_CONFIG_FIELDS:
            problems[name] = f"set by kubesft; use {MANAGED_SFT_CONFIG_FIELDS[name]}"
        elif name not in known:
            near = closest_field_names(name, candidates=known)
            version = f" of TRL {trl_version}" if trl_version else ""
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            problems[name] = f"not an SFTConfig argument{version}{hint}"
    return problems
