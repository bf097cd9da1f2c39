"""The trainer's declarative config: the sections of an SFTJob spec the trainer reads.

It must stay importable without torch, transformers or TRL: the operator composes it into
``SFTJobSpec`` and the CRD is generated from it.
"""

from __future__ import annotations

from typing import Self

from pydantic import (
    Field,
    model_validator,
)

from kubesft_api import cel
from kubesft_api.base import SpecModel
from kubesft_api.checkpoints import CheckpointSettings
from kubesft_api.data_source import SourceFields
from kubesft_api.dataset import DatasetSource
from kubesft_api.evaluation import EvaluationSettings
from kubesft_api.lora import LoraSettings
from kubesft_api.model import ModelSource
from kubesft_api.output import OutputSettings
from kubesft_api.tracking import TrackingSettings
from kubesft_api.training import TrainingSettings
from kubesft_api.validation import field_error
from kubesft_api.validation_stage import ValidationSettings

COMPLETION_ONLY_ON_MESSAGES = (
    "applies to prompt-completion data, and conversations (messages, sharegpt, or asChat rows) have no "
    "completion; use training.assistantOnlyLoss to train on the assistant turns only"
)


def _text_data() -> str:
    """CEL: the data (the one source, or any mixture entry) has format text."""
    mixture = "self.dataset.mixture"
    return (
        f"{cel.equals('dataset.format', 'text')}"
        f" || ({cel.present('dataset.mixture')} && {mixture}.exists(m, has(m.format) && m.format == 'text'))"
    )


_QUANTIZED = cel.differs("lora.quantization", "none")
CROSS_SECTION_RULES = [
    cel.needs(
        _QUANTIZED,
        cel.is_true("lora.enabled"),
        "needs lora.enabled: true (QLoRA trains adapters)",
        "lora.quantization",
    ),
    cel.needs(
        f"{cel.differs('training.sharding', 'none')} && {_QUANTIZED}",
        "false",
        "cannot shard a quantized base (lora.quantization): use lora.quantization: none with sharding, "
        "or sharding: none for QLoRA",
        "training.sharding",
    ),
    cel.needs(
        cel.present("evaluation.maxRetentionLossIncrease"),
        f"{cel.present('dataset.evalSets')} && size(self.dataset.evalSets) > 0",
        "guards the sets of dataset.evalSets; there are none",
        "evaluation.maxRetentionLossIncrease",
    ),
    cel.needs(
        f"{cel.is_true('training.assistantOnlyLoss')} && has(self.dataset)",
        f"!({_text_data()})",
        "needs conversational data; the dataset's format is text",
        "training.assistantOnlyLoss",
    ),
    cel.needs(
        f"{cel.present('dataset.systemPrompt')}",
        f"!({_text_data()})",
        "needs conversational data; the dataset's format is text",
        "dataset.systemPrompt",
    ),
]
"""``TrainerConfig._cross_section`` as CEL, for the rules it can express."""


class TrainerConfig(SpecModel):
    """Everything the trainer needs: the sections of an SFTJob spec it reads."""

    model_config = cel.validations(*CROSS_SECTION_RULES)

    # Required sections default to an unset one, so their own validators name the missing field.
    model: ModelSource = Field(default_factory=ModelSource.model_construct, description="The base model.")
    dataset: DatasetSource = Field(
        default_factory=DatasetSource.model_construct, description="The training data."
    )
    training: TrainingSettings = Field(default_factory=TrainingSettings, description="SFT hyper-parameters.")
    lora: LoraSettings = Field(default_factory=LoraSettings, description="LoRA / QLoRA.")
    checkpoints: CheckpointSettings = Field(
        default_factory=CheckpointSettings, description="Checkpointing and resume."
    )
    output: OutputSettings = Field(
        default_factory=OutputSettings.model_construct, description="Where the final model goes."
    )
    evaluation: EvaluationSettings = Field(
        default_factory=EvaluationSettings,
        description="Sample answers before and after training, and the retention check.",
    )
    tracking: TrackingSettings = Field(
        default_factory=TrackingSettings, description="Experiment tracking (MLflow)."
    )
    validation: ValidationSettings = Field(
        default_factory=ValidationSettings,
        description="The CPU check of model, data and storage before the training Job.",
    )

    @model_validator(mode="after")
    def _cross_section(self) -> Self:
        if self.lora.quantization != "none" and not self.lora.enabled:
            raise field_error("lora.quantization", "needs lora.enabled: true (QLoRA trains adapters)")
        if self.training.sharding != "none" and self.lora.quantization != "none":
            raise field_error(
                "training.sharding",
                f"{self.training.sharding} cannot shard a {self.lora.quantization} quantized base "
                "(lora.quantization): bitsandbytes' packed weights do not split across GPUs here; "
                "use lora.quantization: none with sharding, or sharding: none for QLoRA",
            )
        if self.evaluation.max_retention_loss_increase is not None and not self.dataset.eval_sets:
            raise field_error(
                "evaluation.maxRetentionLossIncrease", "guards the sets of dataset.evalSets; there are none"
            )
        for where, source in _named_sources(self.dataset):
            if self.training.assistant_only_loss and source.format == "text":
                raise field_error(
                    "training.assistantOnlyLoss", f"needs conversational data; {where}.format is text"
                )
            if self.dataset.system_prompt is not None and source.format == "text":
                raise field_error(
                    "dataset.systemPrompt", f"needs conversational data; {where}.format is text"
                )
            if self.training.completion_only_loss and (
                source.format in ("messages", "sharegpt") or source.as_chat
            ):
                raise field_error("training.completionOnlyLoss", COMPLETION_ONLY_ON_MESSAGES)
        return self


def _named_sources(dataset: DatasetSource) -> list[tuple[str, SourceFields]]:
    if dataset.mixture is None:
        return [("dataset", dataset)]
    return [(f"dataset.mixture[{index}]", source) for index, source in enumerate(dataset.mixture)]
