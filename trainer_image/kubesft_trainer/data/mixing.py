"""Sources trained on together: one format, shuffled together with the seed, each row's source known."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from kubesft_trainer.data.row_checks import RowFormat, SourceShape
from kubesft_trainer.errors import DataError

if TYPE_CHECKING:
    from datasets import Dataset


class SourceRows(BaseModel):
    """One source as the summary and model card list it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    source: str
    revision: str | None = None
    format: str
    train_rows: int
    eval_rows: int | None = None


@dataclass
class LoadedSource:
    """One source's checked rows, converted to TRL's columns."""

    where: str
    label: str
    revision: str | None
    shape: SourceShape
    as_chat: bool
    row_format: RowFormat
    train: Dataset
    eval: Dataset | None

    @property
    def conversational(self) -> bool:
        if self.row_format == "messages":
            return True
        return (
            self.row_format == "prompt-completion"
            and len(self.train) > 0
            and isinstance(self.train[0]["prompt"], list)
        )

    @property
    def kind(self) -> str:
        """The row format as the user would name it."""
        if self.shape == "prompt-completion":
            return (
                "prompt-completion as chat"
                if self.as_chat
                else ("prompt-completion (conversational)" if self.conversational else "prompt-completion")
            )
        return self.shape

    def rows(self) -> SourceRows:
        return SourceRows(
            source=self.label,
            revision=self.revision,
            format=self.kind,
            train_rows=len(self.train),
            eval_rows=len(self.eval) if self.eval is not None else None,
        )


@dataclass
class Mixed:
    train: Dataset
    eval: Dataset | None
    origins: list[int]
    """The source (its index) of each training row, in training order."""


def _same_format(sources: list[LoadedSource]) -> None:
    first = sources[0]
    for other in sources[1:]:
        if (other.row_format, other.conversational) != (first.row_format, first.conversational):
            raise DataError(
                f"dataset.mixture: sources must become one row format; {first.where} ({first.label}) gives "
                f"{first.kind} rows, {other.where} ({other.label}) {other.kind} rows"
            )


def mix(sources: list[LoadedSource], seed: int) -> Mixed:
    """One source as it is; several concatenated and shuffled together with ``seed``."""
    import numpy as np
    from datasets import concatenate_datasets

    if len(sources) == 1:
        only = sources[0]
        return Mixed(train=only.train, eval=only.eval, origins=[0] * len(only.train))
    _same_format(sources)
    train = concatenate_datasets([source.train for source in sources])
    origins = [index for index, source in enumerate(sources) for _ in range(len(source.train))]
    order = [int(i) for i in np.random.default_rng(seed).permutation(len(train))]
    evals = [source.eval for source in sources if source.eval is not None]
    return Mixed(
        train=train.select(order),
        eval=concatenate_datasets(evals) if evals else None,
        origins=[origins[i] for i in order],
    )
