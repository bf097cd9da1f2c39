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
    revision: ShortName = Field(
        default="main",
        description=(
            "Hub dataset revision (branch, tag or commit) when name is set; recorded in "
            "training_summary.json and the model card."
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
        default=None,
        description="Share of the rows (after maxSamples) held out for evaluation.",
        gt=0.0,
        le=0.5,
    )
    max_samples: int | None = Field(
        default=None,
        description=(
            "Use at most this many rows of the training split (a seeded random subset); "
            "evalFraction is held out of them."
        ),
        ge=1,
        le=1_000_000_000,
    )
    max_eval_samples: int = Field(
        default=1000,
        description=(
            "Evaluate on at most this many rows (a seeded random subset), from evalSplit or "
            "evalFraction; 0 means all. Held-out rows over the cap stay in training."
        ),
        ge=0,
        le=1_000_000_000,
    )
    seed: Seed = Field(default=42, description="Seed for shuffling, sampling and the evaluation hold-out.")

    @model_validator(mode="after")
    def _sources(self) -> Self:
        one_of(self, "name", "uri", required=True)
        one_of(self, "eval_split", "eval_fraction", required=False)
        if self.subset is not None and self.name is None:
            raise field_error("subset", "applies to hub datasets only; it needs name")
        if self.revision != "main" and self.name is None:
            raise field_error("revision", "applies to hub datasets only; it needs name")
        return self
