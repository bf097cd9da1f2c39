"""spec.validation and status.validation: the CPU check of model, data and storage before any GPU.

The trainer's ``--validate`` computes a ``ValidationReport``; in a cluster the validation pod
writes it as the last line of its termination message (``REPORT_PREFIX`` + JSON), and the
operator copies it into ``status.validation``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from kubesft_api.base import SpecModel

REPORT_PREFIX = "kubesft: validation: "
"""How the validation report's line starts in the trainer's output and termination message."""
TRUNCATION_WARNING_FRACTION = 0.05
"""Above this share of examples cut at maxLength, the Validated condition carries a warning."""


class ValidationSettings(SpecModel):
    """The check on the CPU, before the training Job: model, rows, template, loss tokens, lengths
    and storage."""

    enabled: bool = Field(
        default=True,
        description=(
            "Run a CPU-only validation pod (tokenizer and config, no weights) before the training "
            "Job; a job that fails it never holds a GPU."
        ),
    )
    max_empty_fraction: float = Field(
        default=0.0,
        description=(
            "Largest share of training examples allowed to have no token in the loss (e.g. an "
            "answer maxLength cuts away) before the job fails with InvalidData."
        ),
        ge=0.0,
        le=1.0,
    )
    max_rows: int = Field(
        default=10000,
        description="Tokenize at most this many training rows (a seeded random subset); 0 means all.",
        ge=0,
        le=1_000_000_000,
    )


class ValidationReport(BaseModel):
    """What validation found: the figures in status.validation and ``--validate``'s output."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    training_rows: int = Field(default=0, description="Rows in training (after maxSamples).", ge=0)
    eval_rows: int | None = Field(default=None, description="Rows held out or read for evaluation.", ge=0)
    row_format: str | None = Field(default=None, description="messages, prompt-completion or text.")
    examples: int = Field(default=0, description="Training examples tokenized (at most maxRows).", ge=0)
    empty_loss_examples: int = Field(
        default=0, description="Examples of them with no token in the loss.", ge=0
    )
    tokens_p50: int = Field(default=0, description="Median tokens per example, before truncation.", ge=0)
    tokens_p95: int = Field(default=0, description="95th percentile of tokens per example.", ge=0)
    tokens_max: int = Field(default=0, description="Longest example in tokens.", ge=0)
    truncated_fraction: float = Field(
        default=0.0, description="Share of examples longer than maxLength, cut at it.", ge=0, le=1
    )
    tokens_per_epoch: int = Field(
        default=0,
        description="Tokens one epoch trains on, after truncation (estimated from the examples).",
        ge=0,
    )
    loss_tokens_per_epoch: int = Field(default=0, description="Of them, tokens in the loss.", ge=0)
    steps_per_epoch: int = Field(default=0, description="Optimizer steps per epoch.", ge=0)
    total_steps: int = Field(default=0, description="Optimizer steps planned (maxSteps or epochs).", ge=0)
    memory_per_gpu_gib: float | None = Field(
        default=None,
        description="Estimated memory of one GPU in GiB: weights, gradients, optimizer state and "
        "activations (the parts are in the validation pod's log).",
        ge=0,
    )
    warnings: list[str] = Field(
        default_factory=list, description="Problems that do not stop the job.", max_length=8
    )
    spec_digest: str | None = Field(
        default=None, description="Digest of the trainer settings validated; a change validates again."
    )

    def summary(self) -> str:
        """One line for the Validated condition and the log."""
        evaluation = f", {self.eval_rows} evaluation rows" if self.eval_rows is not None else ""
        return (
            f"{self.training_rows} training rows{evaluation} ({self.row_format}); tokens per example "
            f"p50 {self.tokens_p50}, p95 {self.tokens_p95}, max {self.tokens_max}; "
            f"{self.truncated_fraction:.1%} truncated at maxLength; {self.empty_loss_examples} of "
            f"{self.examples} examples without loss tokens; about {self.tokens_per_epoch} tokens and "
            f"{self.steps_per_epoch} steps per epoch, {self.total_steps} steps planned"
            + (
                f"; about {self.memory_per_gpu_gib} GiB per GPU"
                if self.memory_per_gpu_gib is not None
                else ""
            )
        )
