"""Loads the training and evaluation rows: from the hub or files, format detected, fields mapped, rows checked."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubesft_api.checkpoints import CheckpointSettings
from kubesft_api.dataset import DatasetSource
from kubesft_trainer.data.row_checks import FieldNames, RowFormat, check_rows
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

    @property
    def conversational(self) -> bool:
        if self.row_format == "messages":
            return True
        return self.row_format == "prompt-completion" and isinstance(self.train[0]["prompt"], list)


def _fields(source: DatasetSource) -> FieldNames:
    return FieldNames(
        messages=source.messages_field,
        prompt=source.prompt_field,
        completion=source.completion_field,
        text=source.text_field,
    )


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


def _load_hub_split(source: DatasetSource, split: str, field: str, hf_token: str | None) -> Dataset:
    from datasets import load_dataset

    try:
        return load_dataset(source.name, source.subset, split=split, revision=source.revision, token=hf_token)
    except ValueError as error:
        # datasets raises ValueError for an unknown split or configuration
        raise DataError(f"{field}: {error}") from error
    except FileNotFoundError as error:
        raise DataError(f"dataset.name: {source.name} not found: {error}") from error
    except OSError as error:
        raise TrainerError(f"dataset.name: downloading {source.name} failed: {error}") from error


def _load_split(
    source: DatasetSource,
    split: str,
    field: str,
    settings: CheckpointSettings,
    cache_root: Path,
    hf_token: str | None,
) -> Dataset:
    if source.name is not None:
        return _load_hub_split(source, split, field, hf_token)
    assert source.uri is not None
    try:
        root = local_copy(source.uri, "dataset.uri", settings, cache_root, tuple(BUILDERS))
    except FileNotFoundError as error:
        raise DataError(str(error)) from error
    if root.is_file():
        if root.suffix.lower() not in BUILDERS:
            raise DataError(f"dataset.uri: {source.uri} is not a .jsonl, .json, .parquet or .csv file")
        if split != source.split:
            raise DataError(
                f"{field}: {source.uri} is a single file, so it has no '{split}' split; use evalFraction"
            )
        return _read_files([root], "dataset.uri")
    files = _split_files(root, split)
    if not files and split == source.split:
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in BUILDERS)
        if source.eval_split is not None:
            files = [p for p in files if p not in _split_files(root, source.eval_split)]
    if not files:
        raise DataError(
            f"{field}: no .jsonl, .json, .parquet or .csv files for split '{split}' under {source.uri}"
        )
    return _read_files(files, "dataset.uri")


def detect_format(columns: list[str], source: DatasetSource) -> RowFormat:
    """The row format ``dataset.format`` names, or the one the columns show."""
    fields = _fields(source)
    wanted: dict[RowFormat, list[str]] = {
        "messages": [fields.messages],
        "prompt-completion": [fields.prompt, fields.completion],
        "text": [fields.text],
    }
    if source.format != "auto":
        missing = [c for c in wanted[source.format] if c not in columns]
        if missing:
            raise DataError(
                f"dataset: format {source.format} needs column(s) {', '.join(missing)}; "
                f"the data has {', '.join(columns)}"
            )
        return source.format
    for row_format, needed in wanted.items():
        if all(c in columns for c in needed):
            return row_format
    raise DataError(
        f"dataset: cannot tell the format from the columns {', '.join(columns)}; expected '{fields.messages}' "
        f"(conversations), '{fields.prompt}' + '{fields.completion}', or '{fields.text}'. Set dataset.format "
        "and the matching *Field names"
    )


def _to_trl_columns(dataset: Dataset, row_format: RowFormat, source: DatasetSource) -> Dataset:
    fields = _fields(source)
    mapping = {
        "messages": {fields.messages: "messages"},
        "prompt-completion": {fields.prompt: "prompt", fields.completion: "completion"},
        "text": {fields.text: "text"},
    }[row_format]
    dataset = dataset.select_columns(list(mapping))
    renames = {old: new for old, new in mapping.items() if old != new}
    return dataset.rename_columns(renames) if renames else dataset


def _pick(dataset: Dataset, indices: list[int]) -> Dataset:
    return dataset if indices == list(range(len(dataset))) else dataset.select(indices)


def _checked(
    dataset: Dataset,
    indices: list[int],
    row_format: RowFormat,
    source: DatasetSource,
    assistant_only: bool,
    split: str,
    description: str,
) -> Dataset:
    picked = _pick(dataset, indices)
    report = check_rows(picked, indices, row_format, _fields(source), assistant_only, split, description)
    report.raise_if_bad()
    return picked


def _hold_out(indices: list[int], source: DatasetSource) -> tuple[list[int], list[int]]:
    """Train and eval row indices, the eval ones a seeded random ``evalFraction`` of ``indices``,
    at most ``maxEvalSamples`` of them: the rest stay in training."""
    import numpy as np

    if source.eval_fraction is None:
        return indices, []
    count = len(indices)
    held = min(max(1, round(count * source.eval_fraction)), count - 1)
    if source.max_eval_samples:
        held = min(held, source.max_eval_samples)
    if held < 1:
        raise DataError(f"dataset.evalFraction: {count} row(s) are too few to hold any out for evaluation")
    order = np.random.default_rng(source.seed).permutation(count)
    return sorted(indices[int(i)] for i in order[held:]), sorted(indices[int(i)] for i in order[:held])


def _sample(indices: list[int], limit: int | None, seed: int) -> list[int]:
    """A seeded random ``limit`` of ``indices`` (all of them without a limit), in their order."""
    import numpy as np

    if not limit or len(indices) <= limit:
        return indices
    chosen = np.random.default_rng(seed).permutation(len(indices))[:limit]
    return sorted(indices[int(i)] for i in chosen)


def load_data(
    source: DatasetSource,
    assistant_only: bool,
    settings: CheckpointSettings,
    cache_root: Path,
    hf_token: str | None,
) -> PreparedData:
    """Load, map and check the training rows (and evaluation rows, when the spec asks for them)."""
    description = source.name or source.uri or ""
    if source.subset:
        description += f" ({source.subset})"
    train_all = _load_split(source, source.split, "dataset.split", settings, cache_root, hf_token)
    if len(train_all) == 0:
        raise DataError(f"dataset.split: the {source.split} split of {description} has no rows")
    row_format = detect_format(list(train_all.column_names), source)
    if assistant_only and row_format == "text":
        raise DataError("training.assistantOnlyLoss: needs conversational data; the data is plain text")
    train_all = _to_trl_columns(train_all, row_format, source)
    sampled = _sample(list(range(len(train_all))), source.max_samples, source.seed)
    train_indices, eval_indices = _hold_out(sampled, source)
    train = _checked(train_all, train_indices, row_format, source, assistant_only, source.split, description)
    evaluation: Dataset | None = None
    if eval_indices:
        evaluation = _checked(
            train_all, eval_indices, row_format, source, assistant_only, "held-out", description
        )
    elif source.eval_split is not None:
        eval_all = _load_split(source, source.eval_split, "dataset.evalSplit", settings, cache_root, hf_token)
        if len(eval_all) == 0:
            raise DataError(f"dataset.evalSplit: the {source.eval_split} split of {description} has no rows")
        eval_format = detect_format(list(eval_all.column_names), source)
        if eval_format != row_format:
            raise DataError(f"dataset.evalSplit: its rows are {eval_format}, the training rows {row_format}")
        eval_all = _to_trl_columns(eval_all, row_format, source)
        evaluation = _checked(
            eval_all,
            _sample(list(range(len(eval_all))), source.max_eval_samples, source.seed),
            row_format,
            source,
            assistant_only,
            source.eval_split,
            description,
        )
    data = PreparedData(train=train, eval=evaluation, row_format=row_format, description=description)
    if assistant_only and row_format == "prompt-completion" and not data.conversational:
        raise DataError(
            "training.assistantOnlyLoss: needs conversational data; the prompts and completions are plain strings "
            "(completion-only loss applies to them by default)"
        )
    log.info(
        "data: %d training rows%s, format %s, from %s",
        len(train),
        f", {len(evaluation)} evaluation rows" if evaluation is not None else "",
        row_format,
        description,
    )
    return data
