"""spec.runPolicy: how the job runs, retries, pauses and is cleaned up."""

from __future__ import annotations

from pydantic import (
    Field,
)

from kubesft_api.base import SpecModel


class RunPolicy(SpecModel):
    """How the job runs, retries, pauses and is cleaned up."""

    suspend: bool = Field(default=False, description="Stop the pods after a final checkpoint; false resumes.")
    backoff_limit: int = Field(
        default=3,
        description="Retries after retryable failures (crashes, a lost node); a preemption or eviction "
        "is retried without counting.",
        ge=0,
        le=100,
    )
    active_deadline_seconds: int | None = Field(
        default=None, description="Fail the job when it has run this long.", ge=1, le=31_536_000
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        description="Delete the SFTJob this long after it succeeds or fails.",
        ge=0,
        le=31_536_000,
    )
    queue_name: str | None = Field(
        default=None,
        description="Kueue LocalQueue; the Job is created suspended for Kueue to admit.",
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    )
    termination_grace_period_seconds: int = Field(
        default=300,
        description=(
            "Time the trainer gets after SIGTERM (preemption, suspend, delete) to save and "
            "upload a last checkpoint. Cover one step plus one save and upload."
        ),
        ge=30,
        le=86_400,
    )
