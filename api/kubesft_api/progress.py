"""The JSON the trainer serves at ``/progress`` and the operator copies into ``status.progress``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

Stage = Literal[
    "Validating",
    "DownloadingModel",
    "DownloadingData",
    "Tokenizing",
    "Training",
    "Evaluating",
    "SavingCheckpoint",
    "UploadingOutput",
]
"""What the trainer is doing now; Validating is the CPU check before the training Job."""


class ProgressReport(BaseModel):
    """Training progress as rank 0 last saw it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    stage: Stage | None = Field(
        default=None,
        description=(
            "What the trainer does now: DownloadingModel, DownloadingData, Tokenizing, Training, "
            "Evaluating, SavingCheckpoint or UploadingOutput."
        ),
    )
    step: int = Field(default=0, description="Optimizer steps done.", ge=0)
    total_steps: int | None = Field(default=None, description="Optimizer steps planned.", ge=0)
    epoch: float | None = Field(default=None, description="Epochs done, fractional.", ge=0)
    percent: float | None = Field(default=None, description="step / totalSteps × 100.", ge=0, le=100)
    eta_seconds: float | None = Field(default=None, description="Estimated seconds left.", ge=0)
    loss: float | None = Field(default=None, description="Latest training loss.")
    eval_loss: float | None = Field(default=None, description="Latest evaluation loss (of the heldout set).")
    eval_losses: dict[str, float] | None = Field(
        default=None,
        description="Latest evaluation loss of each set (heldout and dataset.evalSets).",
        max_length=17,
    )
    eval_baseline_losses: dict[str, float] | None = Field(
        default=None,
        description="Each set's loss before the first step, with dataset.evalSets.",
        max_length=17,
    )
    retention_regressed: list[str] | None = Field(
        default=None,
        description="Sets whose loss rose over their baseline by more than evaluation.maxRetentionLossIncrease.",
        max_length=16,
    )
    learning_rate: float | None = Field(default=None, description="Current learning rate.", ge=0)
    tokens_per_second: float | None = Field(
        default=None, description="Training throughput in tokens per second.", ge=0
    )
    resumed_from_step: int | None = Field(
        default=None, description="Step the run resumed from, if it resumed.", ge=0
    )
    latest_checkpoint: str | None = Field(default=None, description="URI of the newest complete checkpoint.")
    checkpoint_upload_failures: int = Field(
        default=0, description="Checkpoint uploads that failed so far.", ge=0
    )
    checkpoint_status: str | None = Field(
        default=None, description="Storage health, e.g. the last upload error while it lasts."
    )
    mlflow_run_id: str | None = Field(default=None, description="The MLflow run the trainer logs to.")
    mlflow_run_url: str | None = Field(default=None, description="Where the MLflow run is shown.")
    updated_at: str | None = Field(default=None, description="RFC 3339 time of this report.")
