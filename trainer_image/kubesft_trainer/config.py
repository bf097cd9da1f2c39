"""The trainer's declarative config: what to train, on what, how, and where results go.

This module is the single source of truth for the training half of the SFTJob API. The
operator composes these sections into ``SFTJobSpec`` and the CRD is generated from them, so
it must stay importable without torch, transformers or TRL.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from pydantic.alias_generators import to_camel

from kubesft_trainer.sft_config_fields import (
    MANAGED_SFT_CONFIG_FIELDS,
    SFT_CONFIG_FIELDS,
    closest_field_names,
)
from kubesft_trainer.validation import field_error

BUILTIN_CHAT_TEMPLATES = ("chatml",)
"""Names ``model.chatTemplate`` accepts besides an inline Jinja template."""

_HUB_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$"
_K8S_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
_SECRET_KEY = r"^[-._a-zA-Z0-9]+$"


class SpecModel(BaseModel):
    """Base for every spec section: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
    )


class SecretKeyRef(SpecModel):
    """A key inside a Kubernetes Secret. kubesft only ever passes the reference to pods."""

    name: str = Field(
        description="Name of the Secret in the SFTJob's namespace.",
        min_length=1,
        max_length=253,
        pattern=_K8S_NAME,
    )
    key: str = Field(
        default="HF_TOKEN",
        description="Key inside the Secret.",
        min_length=1,
        max_length=253,
        pattern=_SECRET_KEY,
    )


class S3CredentialsRef(SpecModel):
    """A Secret holding S3 credentials, handed to the trainer as the standard AWS_* variables."""

    name: str = Field(
        description="Name of the Secret in the SFTJob's namespace.",
        min_length=1,
        max_length=253,
        pattern=_K8S_NAME,
    )
    access_key_id_key: str = Field(
        default="AWS_ACCESS_KEY_ID",
        description="Key of the access key id inside the Secret.",
        min_length=1,
        max_length=253,
        pattern=_SECRET_KEY,
    )
    secret_access_key_key: str = Field(
        default="AWS_SECRET_ACCESS_KEY",
        description="Key of the secret access key inside the Secret.",
        min_length=1,
        max_length=253,
        pattern=_SECRET_KEY,
    )
    session_token_key: str | None = Field(
        default=None,
        description="Key of an optional session token inside the Secret.",
        min_length=1,
        max_length=253,
        pattern=_SECRET_KEY,
    )


def _check_uri(value: str | None, schemes: tuple[str, ...], what: str) -> str | None:
    """Accept ``scheme://…`` for the listed schemes, or an absolute local path."""
    if value is None:
        return None
    match = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://(.*)$", value)
    if match is None:
        if value.startswith("/"):
            return value
        raise ValueError(
            f"'{value}' is neither an absolute path nor a URI; "
            f"use {' or '.join(s + '://…' for s in schemes)} or an absolute path for {what}"
        )
    scheme, rest = match.group(1).lower(), match.group(2)
    if scheme == "file":
        if not rest.startswith("/"):
            raise ValueError(f"'{value}': a file:// URI needs an absolute path")
        return value
    if scheme not in schemes:
        supported = ", ".join(s + "://" for s in schemes)
        raise ValueError(
            f"scheme '{scheme}://' is not supported for {what}; use {supported} or an absolute local path"
        )
    if scheme == "s3" and not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$", rest):
        raise ValueError(f"'{value}' is not a valid s3://bucket/prefix URI")
    if scheme == "pvc" and not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(/.*)?$", rest):
        raise ValueError(f"'{value}' is not a valid pvc://claim/path URI")
    return value


def _one_of(model: BaseModel, first: str, second: str, required: bool) -> None:
    """Raise when both aliases are set, or (if ``required``) neither."""
    a, b = getattr(model, first), getattr(model, second)
    if a is not None and b is not None:
        raise field_error(to_camel(second), f"set either {to_camel(first)} or {to_camel(second)}, not both")
    if required and a is None and b is None:
        raise field_error(to_camel(first), f"set one of {to_camel(first)} or {to_camel(second)}")


class ModelSource(SpecModel):
    """The base model to fine-tune, and how to read its tokenizer and chat template."""

    name: str | None = Field(
        default=None,
        description="Hugging Face Hub model id, e.g. HuggingFaceTB/SmolLM2-135M. Set name or uri.",
        max_length=200,
        pattern=_HUB_ID,
    )
    uri: str | None = Field(
        default=None,
        description=(
            "Model location instead of a hub id: s3://bucket/prefix, pvc://claim/path or an "
            "absolute local path. Set name or uri."
        ),
        max_length=2048,
    )
    revision: str = Field(
        default="main",
        description="Hub revision (branch, tag or commit) when name is set.",
        min_length=1,
        max_length=200,
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        default="auto",
        description="dtype the weights are loaded in; auto keeps the checkpoint's own.",
    )
    trust_remote_code: bool = Field(
        default=False,
        description="Allow model code shipped with the checkpoint to run. Only for sources you trust.",
    )
    chat_template: str | None = Field(
        default=None,
        description=(
            "Chat template to use instead of the model's: a built-in name (chatml, with "
            "generation markers so assistantOnlyLoss works) or an inline Jinja template. "
            "Unset keeps the model's own template; a model without one needs this for "
            "conversational data."
        ),
        min_length=1,
        max_length=65536,
    )
    token_secret: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding an HF_TOKEN for gated or private hub models.",
    )

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        return _check_uri(value, ("s3", "pvc"), "model.uri")

    @field_validator("chat_template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is None or value in BUILTIN_CHAT_TEMPLATES:
            return value
        if "{{" in value or "{%" in value:
            return value
        raise ValueError(
            f"'{value}' is neither a built-in template ({', '.join(BUILTIN_CHAT_TEMPLATES)}) "
            "nor a Jinja template"
        )

    @model_validator(mode="after")
    def _source(self) -> Self:
        _one_of(self, "name", "uri", required=True)
        return self


class DatasetSource(SpecModel):
    """The training data, its format and how to hold out evaluation rows."""

    name: str | None = Field(
        default=None,
        description="Hugging Face Hub dataset id, e.g. HuggingFaceTB/smoltalk. Set name or uri.",
        max_length=200,
        pattern=_HUB_ID,
    )
    subset: str | None = Field(
        default=None,
        description="Hub dataset configuration name, e.g. everyday-conversations.",
        min_length=1,
        max_length=200,
    )
    uri: str | None = Field(
        default=None,
        description=(
            "Data files instead of a hub id: s3://bucket/key-or-prefix, pvc://claim/path or an "
            "absolute local path to a .jsonl, .json, .parquet or .csv file or a folder of them."
        ),
        max_length=2048,
    )
    split: str = Field(
        default="train",
        description="Split used for training.",
        min_length=1,
        max_length=200,
    )
    format: Literal["auto", "messages", "prompt-completion", "text"] = Field(
        default="auto",
        description=(
            "Row format. auto detects it from the columns: messages (a list of role/content "
            "turns), prompt-completion (strings or message lists), or text."
        ),
    )
    messages_field: str = Field(
        default="messages",
        description="Column holding the conversation in messages format.",
        min_length=1,
        max_length=200,
    )
    prompt_field: str = Field(
        default="prompt",
        description="Column holding the prompt in prompt-completion format.",
        min_length=1,
        max_length=200,
    )
    completion_field: str = Field(
        default="completion",
        description="Column holding the completion in prompt-completion format.",
        min_length=1,
        max_length=200,
    )
    text_field: str = Field(
        default="text",
        description="Column holding the document in text format.",
        min_length=1,
        max_length=200,
    )
    eval_split: str | None = Field(
        default=None,
        description="Split used for evaluation. Set evalSplit or evalFraction, not both.",
        min_length=1,
        max_length=200,
    )
    eval_fraction: float | None = Field(
        default=None,
        description="Share of training rows held out for evaluation.",
        gt=0.0,
        le=0.5,
    )
    max_samples: int | None = Field(
        default=None,
        description="Use at most this many training rows (after shuffling with seed).",
        ge=1,
        le=1_000_000_000,
    )
    seed: int = Field(
        default=42,
        description="Seed for shuffling, sampling and the evaluation hold-out.",
        ge=0,
        le=2**32 - 1,
    )

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        return _check_uri(value, ("s3", "pvc"), "dataset.uri")

    @model_validator(mode="after")
    def _sources(self) -> Self:
        _one_of(self, "name", "uri", required=True)
        _one_of(self, "eval_split", "eval_fraction", required=False)
        if self.subset is not None and self.name is None:
            raise field_error("subset", "applies to hub datasets only; it needs name")
        return self


LR_SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "cosine_with_min_lr",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "warmup_stable_decay",
)


class TrainingSettings(SpecModel):
    """The SFT settings people touch most. Anything else goes through extraArgs."""

    epochs: float = Field(
        default=1.0,
        description="Passes over the training data; ignored when maxSteps is set.",
        gt=0.0,
        le=1000.0,
    )
    max_steps: int | None = Field(
        default=None,
        description="Total optimizer steps; overrides epochs.",
        ge=1,
        le=100_000_000,
    )
    learning_rate: float = Field(
        default=2e-5,
        description="Peak learning rate.",
        gt=0.0,
        le=1.0,
    )
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
        default=0.0,
        description="Share of total steps spent warming the learning rate up.",
        ge=0.0,
        lt=1.0,
    )
    per_device_batch_size: int = Field(
        default=8,
        description="Sequences per device per micro-batch.",
        ge=1,
        le=4096,
    )
    gradient_accumulation_steps: int = Field(
        default=1,
        description="Micro-batches accumulated per optimizer step.",
        ge=1,
        le=4096,
    )
    max_length: int = Field(
        default=1024,
        description="Maximum tokens per sequence (or per packed sequence).",
        ge=8,
        le=1_048_576,
    )
    packing: bool = Field(
        default=False,
        description=(
            "Pack several examples into each sequence (best-fit decreasing). Samples stay "
            "isolated only with FlashAttention; with SDPA they can attend to each other."
        ),
    )
    padding_free: bool = Field(
        default=False,
        description="Concatenate a batch without padding. Needs packing when maxLength is set.",
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
            "prompt-completion data, as in TRL."
        ),
    )
    gradient_checkpointing: bool = Field(
        default=True,
        description="Recompute activations in the backward pass to save memory.",
    )
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        default="auto",
        description="Mixed precision. auto picks bf16 on GPUs that support it and fp32 on CPU.",
    )
    seed: int = Field(
        default=42,
        description="Seed for model initialisation, dropout and data order.",
        ge=0,
        le=2**32 - 1,
    )
    logging_steps: int = Field(
        default=10,
        description="Log loss, learning rate and throughput every this many steps.",
        ge=1,
        le=1_000_000,
    )
    eval_steps: int = Field(
        default=50,
        description="Evaluate every this many steps when evaluation data is set.",
        ge=1,
        le=1_000_000,
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
        problems = []
        for key in sorted(value):
            if key in MANAGED_SFT_CONFIG_FIELDS:
                problems.append(f"'{key}' is set by kubesft; use {MANAGED_SFT_CONFIG_FIELDS[key]}")
            elif key not in SFT_CONFIG_FIELDS:
                near = closest_field_names(key)
                hint = f" (did you mean {', '.join(near)}?)" if near else ""
                problems.append(f"'{key}' is not an SFTConfig argument{hint}")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _combinations(self) -> Self:
        if self.padding_free and not self.packing:
            raise field_error(
                "paddingFree",
                "needs packing: true (TRL refuses padding-free without packing when maxLength is set)",
            )
        return self


class LoraSettings(SpecModel):
    """Parameter-efficient fine-tuning with LoRA, optionally on a quantized base (QLoRA)."""

    enabled: bool = Field(default=False, description="Train LoRA adapters instead of all weights.")
    r: int = Field(default=16, description="LoRA rank.", ge=1, le=1024)
    alpha: int = Field(default=32, description="LoRA scaling alpha.", ge=1, le=4096)
    dropout: float = Field(default=0.05, description="Dropout on the LoRA path.", ge=0.0, lt=1.0)
    target_modules: list[Annotated[str, StringConstraints(min_length=1, max_length=256)]] = Field(
        default_factory=lambda: ["all-linear"],
        description="Module names to adapt, or all-linear.",
        min_length=1,
        max_length=256,
    )
    quantization: Literal["none", "4bit", "8bit"] = Field(
        default="none",
        description="Load the base model quantized with bitsandbytes (QLoRA). Needs CUDA.",
    )
    merge_on_finish: bool = Field(
        default=False,
        description="Also write a model with the adapters merged into the base weights.",
    )


class CheckpointSettings(SpecModel):
    """Where checkpoints go so a preempted or suspended job resumes where it stopped."""

    uri: str | None = Field(
        default=None,
        description=(
            "Checkpoint location: s3://bucket/prefix, or an absolute path on a shared volume. "
            "Unset keeps checkpoints inside the pod only, so a restart starts over."
        ),
        max_length=2048,
    )
    credentials_secret: S3CredentialsRef | None = Field(
        default=None,
        description=(
            "Secret with S3 credentials, used for every s3:// URI of the job (model, dataset, "
            "checkpoints, output). Unset uses the pod's ambient credentials (e.g. IRSA)."
        ),
    )
    endpoint_url: str | None = Field(
        default=None,
        description="S3 endpoint for MinIO or another S3-compatible store; unset means AWS.",
        max_length=2048,
        pattern=r"^https?://[^\s/]+(/.*)?$",
    )
    region: str = Field(
        default="us-east-1",
        description="S3 region.",
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9-]+$",
    )
    save_steps: int = Field(
        default=500,
        description="Save (and upload) a checkpoint every this many steps.",
        ge=1,
        le=100_000_000,
    )
    keep: int = Field(
        default=3,
        description="Complete checkpoints to keep; older ones are deleted.",
        ge=1,
        le=1000,
    )
    resume: Literal["auto", "never"] = Field(
        default="auto",
        description="auto resumes from the newest complete checkpoint; never starts over.",
    )

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        return _check_uri(value, ("s3",), "checkpoints.uri")


class OutputSettings(SpecModel):
    """Where the final model, its card, summary and loss curve are written."""

    uri: str | None = Field(
        default=None,
        description=("Output location: s3://bucket/prefix, pvc://claim/path or an absolute path. Required."),
        max_length=2048,
    )

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        return _check_uri(value, ("s3", "pvc"), "output.uri")

    @model_validator(mode="after")
    def _required(self) -> Self:
        if self.uri is None:
            raise field_error("uri", "required: where the trained model is written")
        return self


class TrainerConfig(SpecModel):
    """Everything the trainer needs: the sections of an SFTJob spec it reads."""

    model: ModelSource = Field(
        default_factory=lambda: ModelSource.model_construct(),
        description="The base model.",
    )
    dataset: DatasetSource = Field(
        default_factory=lambda: DatasetSource.model_construct(),
        description="The training data.",
    )
    training: TrainingSettings = Field(
        default_factory=TrainingSettings,
        description="SFT hyper-parameters.",
    )
    lora: LoraSettings = Field(default_factory=LoraSettings, description="LoRA / QLoRA.")
    checkpoints: CheckpointSettings = Field(
        default_factory=CheckpointSettings,
        description="Checkpointing and resume.",
    )
    output: OutputSettings = Field(
        default_factory=lambda: OutputSettings.model_construct(),
        description="Where the final model goes.",
    )

    @model_validator(mode="after")
    def _cross_section(self) -> Self:
        if self.lora.quantization != "none" and not self.lora.enabled:
            raise field_error("lora.quantization", "needs lora.enabled: true (QLoRA trains adapters)")
        if self.training.assistant_only_loss and self.dataset.format in ("text", "prompt-completion"):
            raise field_error(
                "training.assistantOnlyLoss",
                f"needs conversational data; dataset.format is {self.dataset.format}",
            )
        return self
