"""Loads the training and evaluation rows: from the hub or files, format detected, fields mapped, rows checked."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubesft_api.checkpoints import CheckpointSettings
from kubesft_api.data_source import SourceFields
from kubesft_api.dataset import DatasetSource
from kubesft_trainer.data.mixing import LoadedSource, SourceRows, mix
from kubesft_trainer.data.row_checks import RowFormat, SourceShape, check_rows
from kubesft_trainer.data.selection import hold_out, repeated, sample, weighted_count
from kubesft_trainer.data.shapes import (
    conversation_column,
    converted,
    detect_shape,
    field_names,
    to_trl_columns,
    trl_format,
)
from kubesft_trainer.errors import DataError, TrainerError
from kubesft_trainer.storage.sources import local_copy

if TYPE_CHECKING:
    from datasets import Dataset

log = logging.getLogger(__name__)

BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
"""File suffix -> the datasets builder that reads it."""


@dataclass
class PreparedData:
    """Rows ready for SFTTrainer, with TRL's column names (messages / prompt + completion / text)."""

    train: Dataset
    eval: Dataset | None
    row_format: RowFormat
    description: str
    sources: list[SourceRows]
    origins: list[int]
    """The source (its index in ``sources``) of each training row."""

    @property
    def conversational(self) -> bool:
        if self.row_format == "messages":
            return True
        return self.row_format == "prompt-completion" and isinstance(self.train[0]["prompt"], list)


def _split_files(root: Path, split: str) -> list[Path]:
    """Files of ``split`` under a folder: ``<split>.jsonl``, ``<split>-00000.parquet``, ``<split>/…``.

    A folder with no file named after any split is all one split, the training one.
    """
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in BUILDERS)

    def split_of(path: Path) -> str:
        first = path.relative_to(root).parts[0]
        stem = first.split(".")[0]
        for separator in ("-", "_"):
            stem = stem.split(separator)[0]
        return stem

    return [p for p in files if split_of(p) == split]


def _csv_options(first_file: Path) -> dict[str, Any]:
    """Every CSV cell is text: pandas would otherwise turn an answer like "12." into a float."""
    import csv

    from datasets import Features, Value

    with first_file.open(newline="") as handle:
        header = next(csv.reader(handle), [])
    return {"features": Features({name: Value("string") for name in header}), "keep_default_na": False}


def _read_files(files: list[Path], field: str) -> Dataset:
    from datasets import load_dataset

    suffixes = sorted({p.suffix.lower() for p in files})
    if len(suffixes) != 1:
        raise DataError(
            f"{field}: mixed file types {', '.join(suffixes)}; use one of .jsonl, .json, .parquet, .csv"
        )
    builder = BUILDERS[suffixes[0]]
    options = _csv_options(files[0]) if builder == "csv" else {}
    try:
        return load_dataset(builder, data_files=[str(p) for p in files], split="train", **options)
    except Exception as error:  # pyarrow and datasets raise many types for unreadable files
        names = ", ".join(str(p) for p in files[:3]) + (" …" if len(files) > 3 else "")
        raise DataError(f"{field}: cannot read {names}: {type(error).__name__}: {error}") from error


def _load_hub_split(
    source: SourceFields, split: str, where: str, field: str, hf_token: str | None
) -> Dataset:
    from datasets import load_dataset

    try:
        return load_dataset(source.name, source.subset, split=split, revision=source.revision, token=hf_token)
    except ValueError as error:
        # datasets raises ValueError for an unknown split or configuration
        raise DataError(f"{where}.{field}: {error}") from error
    except FileNotFoundError as error:
        raise DataError(f"{where}.name: {source.name} not found: {error}") from error
    except OSError as error:
        raise TrainerError(f"{where}.name: downloading {source.name} failed: {error}") from error


@dataclass
class Reader:
    """Reads the splits of a source, from the hub or from files, for messages that name ``where``."""

    settings: CheckpointSettings
    cache_root: Path
    hf_token: str | None

    def split(
        self, source: SourceFields, where: str, split: str, field: str, eval_split: str | None
    ) -> Dataset:
        if source.name is not None:
            return self._checked_size(
                _load_hub_split(source, split, where, field, self.hf_token), source, where, split, field
            )
        assert source.uri is not None
        uri_field = f"{where}.uri"
        try:
            root = local_copy(source.uri, uri_field, self.settings, self.cache_root, tuple(BUILDERS))
        except FileNotFoundError as error:
            raise DataError(str(error)) from error
        if root.is_file():
            if root.suffix.lower() not in BUILDERS:
                raise DataError(f"{uri_field}: {source.uri} is not a .jsonl, .json, .parquet or .csv file")
            if split != source.split:
                raise DataError(
                    f"{where}.{field}: {source.uri} is a single file, so it has no '{split}' split; use evalFraction"
                )
            return self._checked_size(_read_files([root], uri_field), source, where, split, field)
        files = _split_files(root, split)
        if not files and split == source.split:
            files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in BUILDERS)
            if eval_split is not None:
                files = [p for p in files if p not in _split_files(root, eval_split)]
        if not files:
            raise DataError(
                f"{where}.{field}: no .jsonl, .json, .parquet or .csv files for split '{split}' under {source.uri}"
            )
        return self._checked_size(_read_files(files, uri_field), source, where, split, field)

    @staticmethod
    def _checked_size(dataset: Dataset, source: SourceFields, where: str, split: str, field: str) -> Dataset:
        if len(dataset) == 0:
            raise DataError(f"{where}.{field}: the {split} split of {source.label} has no rows")
        return dataset


def _pick(dataset: Dataset, indices: list[int]) -> Dataset:
    return dataset if indices == list(range(len(dataset))) else dataset.select(indices)


@dataclass
class _Rows:
    """One split of a source read and renamed to TRL's columns, for checking and converting."""

    source: SourceFields
    where: str
    shape: SourceShape
    data: Dataset
    conversation: str

    @classmethod
    def read(cls, dataset: Dataset, source: SourceFields, where: str, assistant_only: bool) -> _Rows:
        shape = detect_shape(dataset, source, where)
        if assistant_only and shape == "text":
            raise DataError(
                f"training.assistantOnlyLoss: needs conversational data; {where} ({source.label}) is plain text"
            )
        if source.as_chat and shape != "prompt-completion":
            raise DataError(f"{where}.asChat: turns prompt-completion rows into chats; the rows are {shape}")
        conversation = conversation_column(list(dataset.column_names), source)
        return cls(source, where, shape, to_trl_columns(dataset, shape, source), conversation)

    def checked(self, indices: list[int], split: str, assistant_only: bool, spec: DatasetSource) -> Dataset:
        picked = _pick(self.data, indices)
        fields = field_names(self.source, self.conversation)
        label = self.source.label if spec.mixture is None else f"{self.where}: {self.source.label}"
        check_rows(picked, indices, self.shape, fields, assistant_only, split, label).raise_if_bad()
        return converted(picked, self.shape, self.source, spec.system_prompt, spec.system_prompt_mode)


def _load_source(
    source: SourceFields, where: str, spec: DatasetSource, assistant_only: bool, reader: Reader
) -> LoadedSource:
    """One source's training (and evaluation) rows: sampled, held out, checked and converted."""
    limit = spec.max_samples if spec.mixture is None else getattr(source, "max_samples", None)
    weight: float | None = getattr(source, "weight", None)
    rows = _Rows.read(
        reader.split(source, where, source.split, "split", spec.eval_split), source, where, assistant_only
    )
    count = len(rows.data)
    sampled = sample(list(range(count)), limit, spec.seed)
    if weight is not None and weight < 1:
        sampled = sample(sampled, weighted_count(count, weight), spec.seed)
    train_indices, eval_indices = hold_out(
        sampled, spec.eval_fraction, spec.max_eval_samples, spec.seed, source.label
    )
    train = rows.checked(train_indices, source.split, assistant_only, spec)
    if weight is not None and weight > 1:
        train = train.select(repeated(len(train), weighted_count(len(train), weight), spec.seed))
    evaluation: Dataset | None = None
    if eval_indices:
        evaluation = rows.checked(eval_indices, "held-out", assistant_only, spec)
    elif spec.eval_split is not None:
        eval_rows = _Rows.read(
            reader.split(source, where, spec.eval_split, "evalSplit", spec.eval_split),
            source,
            where,
            assistant_only,
        )
        if eval_rows.shape != rows.shape:
            raise DataError(
                f"{where}.evalSplit: its rows are {eval_rows.shape}, the training rows {rows.shape}"
            )
        evaluation = eval_rows.checked(
            sample(list(range(len(eval_rows.data))), spec.max_eval_samples, spec.seed),
            spec.eval_split,
            assistant_only,
            spec,
        )
    return LoadedSource(
        where=where,
        label=source.label,
        revision=source.revision if source.name is not None else None,
        shape=rows.shape,
        as_chat=source.as_chat,
        row_format=trl_format(rows.shape, source.as_chat),
        train=train,
        eval=evaluation,
    )


def load_data(
    spec: DatasetSource,
    assistant_only: bool,
    settings: CheckpointSettings,
    cache_root: Path,
    hf_token: str | None,
) -> PreparedData:
    """Load, map and check the training rows (and evaluation rows, when the spec asks for them)."""
    reader = Reader(settings, cache_root, hf_token)
    named = (
        [("dataset", spec)]
        if spec.mixture is None
        else [(f"dataset.mixture[{index}]", source) for index, source in enumerate(spec.mixture)]
    )
    loaded = [_load_source(source, where, spec, assistant_only, reader) for where, source in named]
    mixed = mix(loaded, spec.seed)
    description = ", ".join(source.label for source in loaded)
    data = PreparedData(
        train=mixed.train,
        eval=mixed.eval,
        row_format=loaded[0].row_format,
        description=description,
        sources=[source.rows() for source in loaded],
        origins=mixed.origins,
    )
    if assistant_only and data.row_format == "prompt-completion" and not data.conversational:
        raise DataError(
            "training.assistantOnlyLoss: needs conversational data; the prompts and completions are plain strings "
            "(set dataset.asChat to make them chats; completion-only loss applies to them by default)"
        )
    log.info(
        "data: %d training rows%s, format %s, from %s",
        len(data.train),
        f", {len(data.eval)} evaluation rows" if data.eval is not None else "",
        data.row_format,
        description,
    )
    return data
