"""status of an SFTJob: phase, conditions and progress, written by the operator only."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
)
from pydantic.alias_generators import to_camel

from kubesft_api.progress import ProgressReport, Stage
from kubesft_api.validation_stage import ValidationReport

Phase = Literal["Pending", "Validating", "Running", "Suspended", "Succeeded", "Failed"]
ConditionType = Literal[
    "Validated", "Created", "Running", "Suspended", "Succeeded", "Failed", "RetentionRegressed"
]


class StatusModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Condition(StatusModel):
    """One aspect of the job's state, as Kubernetes conditions are written."""

    type: ConditionType = Field(description="Condition type.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="CamelCase reason, e.g. Preempted.", max_length=128)
    message: str = Field(default="", description="What happened and what to do about it.", max_length=32768)
    last_transition_time: str | None = Field(default=None, description="When status last changed.")


class QueueStatus(StatusModel):
    """Where the job stands with Kueue, when spec.runPolicy.queueName is set."""

    local_queue: str = Field(description="The LocalQueue the job waits in (spec.runPolicy.queueName).")
    cluster_queue: str | None = Field(default=None, description="The ClusterQueue that admitted it.")
    state: Literal["Queued", "Admitted", "Evicted"] = Field(description="Queued, Admitted or Evicted.")
    message: str = Field(default="", description="Kueue's word on the job, from its Workload.")
    waiting_since: str | None = Field(default=None, description="When the job last began to wait.")
    admitted_at: str | None = Field(default=None, description="When Kueue last admitted the job.")
    wait_seconds: float | None = Field(default=None, description="How long the last wait lasted.", ge=0)
    total_wait_seconds: float = Field(default=0.0, description="Time spent queued, all waits together.", ge=0)


class SFTJobStatus(StatusModel):
    """status of an SFTJob, written by the operator only."""

    phase: Phase | None = Field(
        default=None, description="Pending, Validating, Running, Suspended, Succeeded or Failed."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Validated, Created, Running, Suspended, Succeeded, Failed.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    start_time: str | None = Field(default=None, description="When training first started.")
    completion_time: str | None = Field(default=None, description="When the job succeeded or failed.")
    restarts: int = Field(
        default=0,
        description="Attempts started after a retryable failure; these count against runPolicy.backoffLimit.",
        ge=0,
    )
    preemptions: int = Field(
        default=0,
        description="Attempts started after a preemption or eviction; these do not count against "
        "runPolicy.backoffLimit.",
        ge=0,
    )
    attempt: int = Field(default=0, description="Index of the current trainer Job.", ge=0)
    job_name: str | None = Field(default=None, description="Name of the current trainer Job.")
    stage: Stage | None = Field(
        default=None,
        description="What the job does now, e.g. DownloadingModel or Training (kubectl get -o wide).",
    )
    validation: ValidationReport | None = Field(
        default=None,
        description="What the validation before training found: rows, lengths, loss tokens, steps.",
    )
    progress: ProgressReport | None = Field(default=None, description="Training progress read from rank 0.")
    progress_text: str | None = Field(
        default=None, description="Progress as step/total (percent), for kubectl get."
    )
    loss_text: str | None = Field(
        default=None, description="Latest training loss to 4 significant digits, for kubectl get."
    )
    eta_text: str | None = Field(default=None, description="Time left, e.g. 12m, for kubectl get -o wide.")
    latest_checkpoint: str | None = Field(default=None, description="URI of the newest complete checkpoint.")
    output_uri: str | None = Field(default=None, description="Where the trained model was written.")
    queue: QueueStatus | None = Field(default=None, description="Kueue admission, when queued.")
    observed_generation: int | None = Field(
        default=None, description="Generation of the spec this status reflects."
    )
