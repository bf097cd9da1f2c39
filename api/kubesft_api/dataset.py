"""spec.dataset: the training data (one source or a mixture), system prompt and evaluation hold-out."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from kubesft_api import cel
from kubesft_api.base import Seed, ShortName, one_of
from kubesft_api.data_source import EvalSet, MixtureSource, SourceFields, source_rules
from kubesft_api.validation import field_error

_SystemPrompt = Annotated[str, StringConstraints(min_length=1, max_length=16384)]


class DatasetSource(SourceFields):
    """The training data, its format and how to hold out evaluation rows."""

    model_config = cel.validations(
        *source_rules(unless="has(self.mixture)"),
        *cel.either("evalSplit", "evalFraction", required=False),
        *(
            cel.needs(
                "has(self.mixture)",
                f"!has(self.{field})",
                "set either mixture or a single source (name or uri), not both",
                field,
            )
            for field in ("name", "uri")
        ),
    )

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
    eval_sets: list[EvalSet] = Field(
        default_factory=list,
        description=(
            "More evaluation sets beside the held-out rows (named heldout), each evaluated before the "
            "first step and every evalSteps, e.g. a slice of general data to see what training forgets."
        ),
        max_length=16,
    )

    @property
    def sources(self) -> list[SourceFields]:
        """The sources rows are read from: the mixture's entries, or this one."""
        return list(self.mixture) if self.mixture is not None else [self]

    @property
    def uris(self) -> list[str]:
        every = [*self.sources, *self.eval_sets]
        return [source.uri for source in every if source.uri is not None]

    @model_validator(mode="after")
    def _sources(self) -> Self:
        one_of(self, "eval_split", "eval_fraction", required=False)
        names = [entry.set_name for entry in self.eval_sets]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise field_error(f"evalSets[{index}].setName", f"{name} names two evaluation sets")
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
