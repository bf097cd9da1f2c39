"""spec.dataset: the training data (one source or a mixture), system prompt and evaluation hold-out."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from kubesft_api.base import Seed, ShortName, one_of
from kubesft_api.data_source import MixtureSource, SourceFields
from kubesft_api.validation import field_error

_SystemPrompt = Annotated[str, StringConstraints(min_length=1, max_length=16384)]


class DatasetSource(SourceFields):
    """The training data, its format and how to hold out evaluation rows."""

    mixture: list[MixtureSource] | None = Field(
        default=None,
        description=(
            "Several sources trained on together instead of name or uri, each with its own source "
            "fields and weight or maxSamples, shuffled together with the seed. evalSplit or "
            "evalFraction applies to each source."
        ),
        min_length=1,
        max_length=64,
    )
    system_prompt: _SystemPrompt | None = Field(
        default=None,
        description=(
            "Prepended as a system turn to every conversation that has none (conversational data only)."
        ),
    )
    system_prompt_mode: Literal["keep", "replace"] = Field(
        default="keep",
        description="keep: conversations with a system turn keep it; replace: systemPrompt replaces it.",
    )
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
            "Evaluate on at most this many rows (a seeded random subset; of each source in a "
            "mixture), from evalSplit or evalFraction; 0 means all. Held-out rows over the cap stay "
            "in training."
        ),
        ge=0,
        le=1_000_000_000,
    )
    seed: Seed = Field(default=42, description="Seed for shuffling, sampling and the evaluation hold-out.")

    @property
    def sources(self) -> list[SourceFields]:
        """The sources rows are read from: the mixture's entries, or this one."""
        return list(self.mixture) if self.mixture is not None else [self]

    @property
    def uris(self) -> list[str]:
        return [source.uri for source in self.sources if source.uri is not None]

    @model_validator(mode="after")
    def _sources(self) -> Self:
        one_of(self, "eval_split", "eval_fraction", required=False)
        if self.mixture is None:
            self.check_source(required=True)
            return self
        if self.name is not None or self.uri is not None:
            field = "name" if self.name is not None else "uri"
            raise field_error(field, "set either mixture or a single source (name or uri), not both")
        defaults = SourceFields()
        for field in [*SourceFields.model_fields, "max_samples"]:
            value = getattr(self, field)
            if value != getattr(defaults, field, None):
                raise field_error(to_camel(field), "with mixture, set it on each mixture entry")
        return self
