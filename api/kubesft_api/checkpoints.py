"""spec.checkpoints: where checkpoints go, so a preempted or suspended job resumes where it stopped."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    field_validator,
)

from kubesft_api.base import SpecModel, StepCount
from kubesft_api.refs import S3CredentialsRef
from kubesft_api.uris import S3OrLocalUri

_USER_INFO = (
    "must not contain user information (user:password@): it would be stored in the SFTJob for "
    "anyone who can read it; put S3 credentials in credentialsSecret"
)


class CheckpointSettings(SpecModel):
    """Where checkpoints go so a preempted or suspended job resumes where it stopped."""

    uri: S3OrLocalUri | None = Field(
        default=None,
        description=(
            "Checkpoint location: s3://bucket/prefix, or an absolute path on a shared volume. "
            "Unset keeps checkpoints inside the pod only, so a restart starts over."
        ),
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
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "!self.matches('^https?://[^/]*@')", "message": _USER_INFO},
            ]
        },
    )
    region: str = Field(
        default="us-east-1", description="S3 region.", min_length=1, max_length=64, pattern=r"^[a-z0-9-]+$"
    )
    save_steps: StepCount = Field(
        default=500, description="Save (and upload) a checkpoint every this many steps."
    )
    keep: int = Field(
        default=3, description="Complete checkpoints to keep; older ones are deleted.", ge=1, le=1000
    )
    resume: Literal["auto", "never"] = Field(
        default="auto",
        description=(
            "auto resumes from the newest complete checkpoint; never starts over. Either way, "
            "checkpoints under uri made with other model, data or LoRA settings fail the job."
        ),
    )
    resume_from: S3OrLocalUri | None = Field(
        default=None,
        description=(
            "Warm start: a checkpoint folder (e.g. s3://bucket/other-job/checkpoint-300) whose "
            "weights training starts from, with a fresh optimizer and schedule. Used while uri "
            "holds no checkpoint of this job; after that the job resumes from its own."
        ),
    )

    @field_validator("endpoint_url")
    @classmethod
    def _no_user_info(cls, value: str | None) -> str | None:
        if value is not None and "@" in urlsplit(value).netloc:
            raise ValueError(_USER_INFO)
        return value
