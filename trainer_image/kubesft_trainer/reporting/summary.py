"""``training_summary.json``: what was trained, on what, how, and how it went."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from kubesft_trainer.data.mixing import SourceRows
from kubesft_trainer.reporting.eval_sets import EvalSetResult
from kubesft_trainer.reporting.samples import SampleAnswer
from kubesft_trainer.reporting.startup import StartupPhase


class TrainingSummary(BaseModel):
    """Written next to the model; the model card is rendered from it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    base_model: str
    dataset: str
    dataset_revision: str | None = Field(default=None, description="Hub dataset revision, for hub datasets")
    row_format: str
    train_rows: int
    eval_rows: int | None = None
    sources: list[SourceRows] = Field(default_factory=list, description="Each source and its row counts")
    chat_template: str = Field(description="model (its own), chatml, or inline")
    end_of_turn_token: str | None = Field(default=None, description="The EOS the model learned and stops at")
    global_step: int
    max_steps: int
    epoch: float | None = None
    first_train_loss: float | None = None
    final_train_loss: float | None = None
    mean_train_loss: float | None = None
    final_eval_loss: float | None = None
    eval_sets: list[EvalSetResult] = Field(
        default_factory=list,
        description="With dataset.evalSets: each set's loss before training and at the end",
    )
    train_runtime_seconds: float | None = None
    tokens: int | None = None
    tokens_per_second: float | None = None
    resumed_from_step: int | None = None
    warm_started_from: str | None = None
    world_size: int = 1
    precision: str
    weights_dtype: str | None = Field(default=None, description="dtype the weights were trained in")
    lora: bool = False
    merged_model_path: str | None = None
    samples: list[SampleAnswer] = Field(default_factory=list, description="Answers before and after training")
    sample_seconds: float | None = Field(default=None, description="Time spent answering the sample prompts")
    mlflow_run_id: str | None = Field(default=None, description="The MLflow run the training was logged to")
    mlflow_run_url: str | None = None
    startup: list[StartupPhase] = Field(
        default_factory=list,
        description="This run's start, phase by phase, to the end of its first optimizer step",
    )
    checkpoint_download_seconds: float | None = Field(
        default=None,
        description="Finding and downloading the checkpoint to resume from (sha256 checked), which runs "
        "beside the imports and the model and data loading; the startup phase checkpointDownload is what "
        "was left of it",
    )
    checkpoint_download_finished_at: str | None = Field(
        default=None,
        description="When that download was done (RFC 3339, to the millisecond): the startup phases that "
        "began before it ran beside it",
    )
    started_at: str
    finished_at: str
    versions: dict[str, str] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict, description="The trainer config, as the SFTJob spec")

    @property
    def retention_regressed(self) -> list[EvalSetResult]:
        return [item for item in self.eval_sets if item.regressed]


def first_value(log_history: list[dict[str, Any]], key: str) -> float | None:
    return next((float(entry[key]) for entry in log_history if key in entry), None)


def last_value(log_history: list[dict[str, Any]], key: str) -> float | None:
    return first_value(list(reversed(log_history)), key)


def library_versions() -> dict[str, str]:
    import accelerate
    import datasets
    import peft
    import torch
    import transformers
    import trl

    from kubesft_trainer import __version__

    return {
        "kubesft": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "peft": peft.__version__,
        "accelerate": accelerate.__version__,
        "datasets": datasets.__version__,
    }
