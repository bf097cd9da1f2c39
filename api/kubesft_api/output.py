"""spec.output: where the trained model and its companions are written."""

from __future__ import annotations

from typing import Self

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from kubesft_api.base import SpecModel
from kubesft_api.uris import check_uri
from kubesft_api.validation import field_error


class OutputSettings(SpecModel):
    """Where the final model, its card, summary and loss curve are written."""

    uri: str | None = Field(
        default=None,
        description=("Output location: s3://bucket/prefix, pvc://claim/path or an absolute path. Required."),
        max_length=2048,
    )

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        return check_uri(value, ("s3", "pvc"), "output.uri")

    @model_validator(mode="after")
    def _required(self) -> Self:
        if self.uri is None:
            raise field_error("uri", "required: where the trained model is written")
        return self
