"""``--validate``: everything a run needs checked on a CPU, with the weights left where they are.

It imports no torch model code and no TRL, which alone take longer than the checks. It reaches
the model (tokenizer and config only), loads and checks every row, renders every
sampled example with the chat template, counts the tokens in the loss, measures lengths, proves
that the checkpoint and output URIs can be written, and estimates the run's size.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubesft_api.memory_estimate import MemoryEstimate, ModelShape, estimate_memory
from kubesft_api.trainer_config import COMPLETION_ONLY_ON_MESSAGES, TrainerConfig
from kubesft_api.validation_stage import ValidationReport
from kubesft_trainer.config.runtime_env import RuntimeEnv
from kubesft_trainer.data.example_view import IGNORED, describe_example
from kubesft_trainer.data.loading import PreparedData, load_data
from kubesft_trainer.errors import ConfigError, DataError, StorageUnavailableError, TrainerError
from kubesft_trainer.model.loading import load_tokenizer, prepare_tokenizer
from kubesft_trainer.model.templates import check_template_fits_data
from kubesft_trainer.validation.model_files import load_model_config, locate_tokenizer
from kubesft_trainer.validation.retries import with_retries
from kubesft_trainer.validation.statistics import EndOfTurn, Sizes, measure
from kubesft_trainer.validation.storage_probe import probe_storage
from kubesft_trainer.validation.tokens import LossMasking, Tokenized, tokenize_example, truncated

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

SNIPPET_CHARS = 60


@dataclass
class Validated:
    """What ``--validate`` found: the figures, and the first example as the model sees it."""

    report: ValidationReport
    model: str
    notes: list[str]
    examples: list[str]
    """The first example, or with several sources the first of each, as the model sees it."""
    details: list[str]
    """The sources and evaluation sets with their rows, and the memory estimate."""

    def text(self) -> str:
        lines = [
            f"config: ok; model: {self.model}; storage: writable",
            f"data: {self.report.summary()}",
            *self.details,
            *[f"note: {note}" for note in self.notes],
            *[f"warning: {warning}" for warning in self.report.warnings],
            *self.examples,
        ]
        return "\n".join(lines)


def _marked(tokenizer: PreTrainedTokenizerBase, example: Tokenized, max_length: int) -> str:
    first = truncated(example, max_length, False)
    labels = [tid if loss else IGNORED for tid, loss in zip(first.input_ids, first.in_loss, strict=True)]
    return describe_example(tokenizer, first.input_ids, labels)


def _examples(
    tokenizer: PreTrainedTokenizerBase,
    data: PreparedData,
    masking: LossMasking,
    first: Tokenized,
    max_length: int,
) -> list[str]:
    """The first example of each source when there are several, else the first example."""
    if len(data.sources) <= 1:
        return [_marked(tokenizer, first, max_length)]
    shown = []
    for index, source in enumerate(data.sources):
        ((_, example),) = _tokenized(tokenizer, data, [data.origins.index(index)], masking)
        header = f"Source {index + 1} of {len(data.sources)}: {source.source} ({source.format})"
        shown.append(f"{header}\n{_marked(tokenizer, example, max_length)}")
    return shown


def _memory(config: TrainerConfig, env: RuntimeEnv, model_config: dict[str, Any]) -> MemoryEstimate | str:
    """The per-GPU memory estimate, or why there is none."""
    try:
        shape = ModelShape.from_hf_config(model_config)
    except ValueError as error:
        return f"unavailable for this model ({error})"
    return estimate_memory(shape, config, env.nnodes, env.nproc_per_node)


def _details(data: PreparedData, memory: MemoryEstimate | str) -> list[str]:
    lines = [
        f"source: {s.source} ({s.format}): {s.train_rows} training rows"
        + (f", {s.eval_rows} evaluation rows" if s.eval_rows is not None else "")
        for s in data.sources
        if len(data.sources) > 1
    ]
    lines += [f"evaluation set {name}: {len(rows)} rows" for name, rows in data.eval_sets.items()]
    if isinstance(memory, str):
        return [*lines, f"memory estimate: {memory}"]
    # Its warning goes with the report's warnings, printed once.
    return [*lines, *memory.model_copy(update={"warning": None}).lines()]


def _snippet(row: dict[str, Any]) -> str:
    value: Any = row.get("messages") or row.get("prompt") or row.get("text") or ""
    if isinstance(value, list):
        value = next(
            (t.get("content") for t in value if isinstance(t, dict) and t.get("role") != "system"), ""
        )
    text = " ".join(str(value).split())
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"


def _tokenized(
    tokenizer: PreTrainedTokenizerBase, data: PreparedData, indices: list[int], masking: LossMasking
) -> list[tuple[int, Tokenized]]:
    examples = []
    for index in indices:
        row = data.train[index]
        try:
            examples.append((index, tokenize_example(tokenizer, row, data.row_format, masking)))
        except Exception as error:  # jinja2 and tokenizers raise many types for one bad example
            raise DataError(
                f"dataset: training example {index} ({_snippet(row)!r}) cannot be tokenized with the chat "
                f"template: {type(error).__name__}: {error}"
            ) from error
    return examples


def validate(config: TrainerConfig, env: RuntimeEnv) -> Validated:
    """Every check of a run but training; raises the error the run would fail with."""
    if config.training.completion_only_loss and config.dataset.format == "messages":
        raise ConfigError(f"training.completionOnlyLoss: {COMPLETION_ONLY_ON_MESSAGES}")
    cache = env.work_dir / "cache"
    location = locate_tokenizer(config.model, config.checkpoints, cache, env.hf_token)
    model_config = load_model_config(config.model, location)
    tokenizer = load_tokenizer(config.model, location)
    setup = prepare_tokenizer(tokenizer, config.model)
    try:
        data = with_retries(
            "loading the dataset",
            lambda: load_data(
                config.dataset, config.training.assistant_only_loss, config.checkpoints, cache, env.hf_token
            ),
        )
    except (DataError, ConfigError):
        raise
    except TrainerError as error:
        field = "dataset.name" if config.dataset.name else "dataset.uri"
        raise StorageUnavailableError(f"{field}: {error}") from error
    if config.training.completion_only_loss and data.row_format == "messages":
        raise ConfigError(f"training.completionOnlyLoss: {COMPLETION_ONLY_ON_MESSAGES}")
    check_template_fits_data(tokenizer, data.conversational, config.training.assistant_only_loss)
    probe_storage(config)

    total = len(data.train)
    limit = config.validation.max_rows
    indices = list(range(total))
    if limit and total > limit:
        indices = sorted(random.Random(config.dataset.seed).sample(indices, limit))
    masking = LossMasking(
        assistant_only=config.training.assistant_only_loss,
        completion_only=config.training.completion_only_loss is not False,
    )
    examples = _tokenized(tokenizer, data, indices, masking)
    eot = (setup.eos_token or tokenizer.eos_token) if data.conversational else tokenizer.eos_token
    eot_id = tokenizer.convert_tokens_to_ids(eot) if eot else None
    end_of_turn = EndOfTurn(
        token=str(eot),
        token_id=eot_id if isinstance(eot_id, int) else None,
        required=config.model.chat_template is not None or config.model.eos_token is not None,
        field="model.eosToken" if config.model.eos_token else "model.chatTemplate",
    )
    sizes = Sizes(
        training_rows=total,
        eval_rows=len(data.eval) if data.eval is not None else None,
        row_format=data.row_format,
        world_size=env.nnodes * env.nproc_per_node,
    )
    report = measure(
        examples,
        sizes,
        config.training,
        config.validation,
        end_of_turn,
        lambda index: f"training example {index} ({_snippet(data.train[index])!r})",
    )
    memory = _memory(config, env, model_config)
    if not isinstance(memory, str):
        report.memory_per_gpu_gib = round(memory.total_gib, 1)
        if memory.warning and len(report.warnings) < 8:
            report.warnings.append(memory.warning)
    for warning in report.warnings:
        log.warning("%s", warning)
    shown = _examples(tokenizer, data, masking, examples[0][1], config.training.max_length)
    return Validated(report, location.description, setup.notes, shown, _details(data, memory))
