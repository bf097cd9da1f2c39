"""References to Secrets: kubesft only ever passes them on to pods, never reads them."""

from __future__ import annotations

from pydantic import (
    Field,
)

from kubesft_api.base import KubeName, SecretKey, SpecModel


class SecretKeyRef(SpecModel):
    """A key inside a Kubernetes Secret. kubesft only ever passes the reference to pods."""

    name: KubeName = Field(description="Name of the Secret in the SFTJob's namespace.")
    key: SecretKey = Field(default="HF_TOKEN", description="Key inside the Secret.")


class S3CredentialsRef(SpecModel):
    """A Secret holding S3 credentials, handed to the trainer as the standard AWS_* variables."""

    name: KubeName = Field(description="Name of the Secret in the SFTJob's namespace.")
    access_key_id_key: SecretKey = Field(
        default="AWS_ACCESS_KEY_ID", description="Key of the access key id inside the Secret."
    )
    secret_access_key_key: SecretKey = Field(
        default="AWS_SECRET_ACCESS_KEY", description="Key of the secret access key inside the Secret."
    )
    session_token_key: SecretKey | None = Field(
        default=None, description="Key of an optional session token inside the Secret."
    )
