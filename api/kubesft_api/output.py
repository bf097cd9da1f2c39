"""spec.output: where the trained model and its companions are written."""

from __future__ import annotations

from typing import Self

from pydantic import (
    Field,
    model_validator,
)

from kubesft_api.base import SpecModel
from kubesft_api.uris import StorageUri
from kubesft_api.validation import field_error


class OutputSettings(SpecModel):
    """Where the final model, its card, summary and loss curve are written."""

    uri: StorageUri | None = Field(
        default=None,
        description="Output location: s3://bucket/prefix, pvc://claim/path or an absolute path. Required.",
    )

    @model_validator(mode="after")
    def _required(self) -> Self:
        if self.uri is None:
            raise field_error("uri", "required: where the trained model is written")
        return self
