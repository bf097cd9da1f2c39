"""spec.training: the SFT settings people touch most; the rest goes through extraArgs."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from kubesft_api import cel
from kubesft_api.base import Seed, SpecModel, StepCount
from kubesft_api.sft_config_fields import extra_args_problems
from kubesft_api.validation import field_error

_BatchCount = Annotated[int, Field(ge=1, le=4096)]
_StepInterval = Annotated[int, Field(ge=1, le=1_000_000)]


class TrainingSettings(SpecModel):
    """The SFT settings people touch most. Anything else goes through extraArgs."""

    model_config = cel.validations(
        cel.needs(
            cel.is_true("paddingFree"),
            cel.is_true("packing"),
            "needs packing: true (TRL refuses padding-free without packing when maxLength is set)",
            "paddingFree",
        )
    )

    epochs: float = Field(
        default=1.0,
        description="Passes over the training data; ignored when maxSteps is set.",
        gt=0.0,
        le=1000.0,
    )
    max_steps: StepCount | None = Field(default=None, description="Total optimizer steps; overrides epochs.")
    learning_rate: float = Field(default=2e-5, description="Peak learning rate.", gt=0.0, le=1.0)
    lr_scheduler: Literal[
        "linear",
        "cosine",
        "cosine_with_restarts",
        "cosine_with_min_lr",
        "polynomial",
        "constant",
        "constant_with_warmup",
        "inverse_sqrt",
        "warmup_stable_decay",
    ] = Field(default="linear", description="Learning-rate schedule.")
    warmup_ratio: float = Field(
        default=0.0, description="Share of total steps spent warming the learning rate up.", ge=0.0, lt=1.0
    )
    per_device_batch_size: _BatchCount = Field(default=8, description="Sequences per device per micro-batch.")
    gradient_accumulation_steps: _BatchCount = Field(
        default=1, description="Micro-batches accumulated per optimizer step."
    )
    max_length: int = Field(
        default=1024, description="Maximum tokens per sequence (or per packed sequence).", ge=8, le=1_048_576
    )
    packing: bool = Field(
        default=False,
        description=(
            "Pack several examples into each sequence (best-fit decreasing). Samples stay "
            "isolated only with FlashAttention; with SDPA they can attend to each other."
        ),
    )
    padding_free: bool = Field(
        default=False, description="Concatenate a batch without padding. Needs packing when maxLength is set."
    )
    assistant_only_loss: bool = Field(
        default=False,
        description=(
            "Train only on assistant turns. The chat template needs {% generation %} markers; "
            "the built-in chatml template has them."
        ),
    )
    completion_only_loss: bool | None = Field(
        default=None,
        description=(
            "Train only on completions in prompt-completion data. Unset: on for "
            "prompt-completion data, as in TRL. For conversations use assistantOnlyLoss."
        ),
    )
    gradient_checkpointing: bool = Field(
        default=True, description="Recompute activations in the backward pass to save memory."
    )
    sharding: Literal["none", "fsdp", "fsdp-hybrid"] = Field(
        default="none",
        description=(
            "How the GPUs share the model. none: data parallel (DDP), every GPU holds the whole model, "
            "its gradients and optimizer state. fsdp: FSDP full shard, each of them split across all "
            "GPUs. fsdp-hybrid: shard within a node, replicate across nodes."
        ),
    )
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        default="auto",
        description=(
            "Mixed precision (autocast over float32 weights). auto: bf16 on GPUs with native bf16 "
            "(compute capability 8.0 or newer), fp16 with loss scaling on older GPUs, fp32 on CPU."
        ),
    )
    seed: Seed = Field(default=42, description="Seed for model initialisation, dropout and data order.")
    logging_steps: _StepInterval = Field(
        default=10, description="Log loss, learning rate and throughput every this many steps."
    )
    eval_steps: _StepInterval = Field(
        default=50, description="Evaluate every this many steps when evaluation data is set."
    )
    extra_args: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Further TRL SFTConfig arguments, by their Python names (e.g. weight_decay). "
            "Unknown names are refused; names kubesft sets itself must use their spec field."
        ),
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )

    @field_validator("extra_args")
    @classmethod
    def _extra_args(cls, value: dict[str, Any]) -> dict[str, Any]:
        problems = extra_args_problems(value)
        if problems:
            raise ValueError("; ".join(f"'{name}' is {problem}" for name, problem in problems.items()))
        return value

    @model_validator(mode="after")
    def _combinations(self) -> Self:
        if self.padding_free and not self.packing:
            raise field_error(
                "paddingFree",
                "needs packing: true (TRL refuses padding-free without packing when maxLength is set)",
            )
        return self
