"""spec.dataset: the training data, its format and the evaluation hold-out."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import (
    Field,
    model_validator,
)

from kubesft_api.base import HubId, Seed, ShortName, SpecModel, one_of
from kubesft_api.uris import StorageUri
from kubesft_api.validation import field_error


class DatasetSource(SpecModel):
    """The training data, its format and how to hold out evaluation rows."""

    name: HubId | None = Field(
        default=None, description="Hugging Face Hub dataset id, e.g. HuggingFaceTB/smoltalk. Set name or uri."
    )
    subset: ShortName | None = Field(
        default=None, description="Hub dataset configuration name, e.g. everyday-conversations."
    )
    uri: StorageUri | None = Field(
        default=None,
        description=(
            "Data files instead of a hub id: s3://bucket/key-or-prefix, pvc://claim/path or an "
            "absolute local path to a .jsonl, .json, .parquet or .csv file or a folder of them."
        ),
    )
    split: ShortName = Field(default="train", description="Split used for training.")
    format: Literal["auto", "messages", "prompt-completion", "text"] = Field(
        default="auto",
        description=(
            "Row format. auto detects it from the columns: messages (a list of role/content "
            "turns), prompt-completion (strings or message lists), or text."
        ),
    )
    messages_field: ShortName = Field(
        default="messages", description="Column holding the conversation in messages format."
    )
    prompt_field: ShortName = Field(
        default="prompt", description="Column holding the prompt in prompt-completion format."
    )
    completion_field: ShortName = Field(
        default="completion", description="Column holding the completion in prompt-completion format."
    )
    text_field: ShortName = Field(default="text", description="Column holding the document in text format.")
    eval_split: ShortName | None = Field(
        default=None, description="Split used for evaluation. Set evalSplit or evalFraction, not both."
    )
    eval_fraction: float | None = Field(
        default=None, description="Share of training rows held out for evaluation.", gt=0.0, le=0.5
    )
    max_samples: int | None = Field(
        default=None,
        description="Use at most this many training rows (after shuffling with seed).",
        ge=1,
        le=1_000_000_000,
    )
    seed: Seed = Field(default=42, description="Seed for shuffling, sampling and the evaluation hold-out.")

    @model_validator(mode="after")
    def _sources(self) -> Self:
        one_of(self, "name", "uri", required=True)
        one_of(self, "eval_split", "eval_fraction", required=False)
        if self.subset is not None and self.name is None:
            raise field_error("subset", "applies to hub datasets only; it needs name")
        return self
