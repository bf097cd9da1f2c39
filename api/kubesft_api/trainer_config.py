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

from kubesft_api.base import SpecModel
from kubesft_api.checkpoints import CheckpointSettings
from kubesft_api.dataset import DatasetSource
from kubesft_api.evaluation import EvaluationSettings
from kubesft_api.lora import LoraSettings
from kubesft_api.model import ModelSource
from kubesft_api.output import OutputSettings
from kubesft_api.training import TrainingSettings
from kubesft_api.validation import field_error
from kubesft_api.validation_stage import ValidationSettings

COMPLETION_ONLY_ON_MESSAGES = (
    "applies to prompt-completion data, and conversations in messages format have no completion; "
    "use training.assistantOnlyLoss to train on the assistant turns only"
)


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
    evaluation: EvaluationSettings = Field(
        default_factory=EvaluationSettings,
        description="Sample answers before and after training.",
    )
    validation: ValidationSettings = Field(
        default_factory=ValidationSettings,
        description="The CPU check of model, data and storage before the training Job.",
    )

    @model_validator(mode="after")
    def _cross_section(self) -> Self:
        if self.lora.quantization != "none" and not self.lora.enabled:
            raise field_error("lora.quantization", "needs lora.enabled: true (QLoRA trains adapters)")
        if self.training.assistant_only_loss and self.dataset.format == "text":
            raise field_error(
                "training.assistantOnlyLoss", "needs conversational data; dataset.format is text"
            )
        if self.training.completion_only_loss and self.dataset.format == "messages":
            raise field_error("training.completionOnlyLoss", COMPLETION_ONLY_ON_MESSAGES)
        return self
