"""spec.model: the base model to fine-tune, and its tokenizer's chat template."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from kubesft_api.base import HubId, ShortName, SpecModel, one_of
from kubesft_api.refs import SecretKeyRef
from kubesft_api.uris import StorageUri

BUILTIN_CHAT_TEMPLATES = ("chatml",)
"""Names ``model.chatTemplate`` accepts besides an inline Jinja template."""


class ModelSource(SpecModel):
    """The base model to fine-tune, and how to read its tokenizer and chat template."""

    name: HubId | None = Field(
        default=None,
        description="Hugging Face Hub model id, e.g. HuggingFaceTB/SmolLM2-135M. Set name or uri.",
    )
    uri: StorageUri | None = Field(
        default=None,
        description=(
            "Model location instead of a hub id: s3://bucket/prefix, pvc://claim/path or an "
            "absolute local path. Set name or uri."
        ),
    )
    revision: ShortName = Field(
        default="main", description="Hub revision (branch, tag or commit) when name is set."
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        default="auto", description="dtype the weights are loaded in; auto keeps the checkpoint's own."
    )
    trust_remote_code: bool = Field(
        default=False,
        description="Allow model code shipped with the checkpoint to run. Only for sources you trust.",
    )
    chat_template: str | None = Field(
        default=None,
        description=(
            "Chat template to use instead of the model's: a built-in name (chatml, with "
            "generation markers so assistantOnlyLoss works) or an inline Jinja template. "
            "Unset keeps the model's own template; a model without one needs this for "
            "conversational data."
        ),
        min_length=1,
        max_length=65536,
    )
    token_secret: SecretKeyRef | None = Field(
        default=None, description="Secret key holding an HF_TOKEN for gated or private hub models."
    )

    @field_validator("chat_template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is None or value in BUILTIN_CHAT_TEMPLATES:
            return value
        if "{{" in value or "{%" in value:
            return value
        raise ValueError(
            f"'{value}' is neither a built-in template ({', '.join(BUILTIN_CHAT_TEMPLATES)}) "
            "nor a Jinja template"
        )

    @model_validator(mode="after")
    def _source(self) -> Self:
        one_of(self, "name", "uri", required=True)
        return self
