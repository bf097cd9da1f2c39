"""spec.evaluation: what the trainer shows of the model itself, besides the evaluation loss."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    Field,
    StringConstraints,
)

from kubesft_api.base import SpecModel

_Prompt = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
_MAX_SAMPLES = 16
"""The most sample prompts, given or taken from the data: each is answered twice (before and after
training) and shown as a row of the model card."""


class EvaluationSettings(SpecModel):
    """Sample answers before and after training, side by side in the model card."""

    sample_prompts: list[_Prompt] = Field(
        default_factory=list,
        description=(
            "Prompts the model answers before and after training (as a user turn when it has a "
            "chat template). Empty: the first sampleCount prompts of the evaluation data, or of "
            "the training data without evaluation."
        ),
        max_length=_MAX_SAMPLES,
    )
    sample_count: int = Field(
        default=3,
        description="Prompts taken from the data when samplePrompts is empty; 0 turns the samples off.",
        ge=0,
        le=_MAX_SAMPLES,
    )
    sample_max_new_tokens: int = Field(
        default=64, description="Most tokens of each answer (greedy decoding).", ge=1, le=1024
    )
    max_retention_loss_increase: float | None = Field(
        default=None,
        description=(
            "Guard retention: when the loss of a dataset.evalSets set ends more than this above its "
            "baseline (before the first step), the job finishes with a RetentionRegressed warning."
        ),
        gt=0.0,
        le=100.0,
    )
