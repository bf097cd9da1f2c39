"""References to Secrets: kubesft only ever passes them on to pods, never reads them."""

from __future__ import annotations

from pydantic import (
    Field,
)

from kubesft_api.base import K8S_NAME, SECRET_KEY, SpecModel


class SecretKeyRef(SpecModel):
    """A key inside a Kubernetes Secret. kubesft only ever passes the reference to pods."""

    name: str = Field(
        description="Name of the Secret in the SFTJob's namespace.",
        min_length=1,
        max_length=253,
        pattern=K8S_NAME,
    )
    key: str = Field(
        default="HF_TOKEN",
        description="Key inside the Secret.",
        min_length=1,
        max_length=253,
        pattern=SECRET_KEY,
    )


class S3CredentialsRef(SpecModel):
    """A Secret holding S3 credentials, handed to the trainer as the standard AWS_* variables."""

    name: str = Field(
        description="Name of the Secret in the SFTJob's namespace.",
        min_length=1,
        max_length=253,
        pattern=K8S_NAME,
    )
    access_key_id_key: str = Field(
        default="AWS_ACCESS_KEY_ID",
        description="Key of the access key id inside the Secret.",
        min_length=1,
        max_length=253,
        pattern=SECRET_KEY,
    )
    secret_access_key_key: str = Field(
        default="AWS_SECRET_ACCESS_KEY",
        description="Key of the secret access key inside the Secret.",
        min_length=1,
        max_length=253,
        pattern=SECRET_KEY,
    )
    session_token_key: str | None = Field(
        default=None,
        description="Key of an optional session token inside the Secret.",
        min_length=1,
        max_length=253,
        pattern=SECRET_KEY,
    )
