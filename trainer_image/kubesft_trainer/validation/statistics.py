"""The figures validation reports, and the loss-token checks that fail a job before training."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kubesft_api.training import TrainingSettings
from kubesft_api.validation_stage import TRUNCATION_WARNING_FRACTION, ValidationReport, ValidationSettings
from kubesft_trainer.errors import ConfigError, DataError
from kubesft_trainer.validation.tokens import Tokenized, truncated


@dataclass(frozen=True)
class Sizes:
    """How many rows there are, and how many processes train on them."""

    training_rows: int
    eval_rows: int | None
    row_format: str
    world_size: int


@dataclass(frozen=True)
class EndOfTurn:
    """The token the model must learn to stop at; ``required`` when the spec chose it."""

    token: str
    token_id: int | None
    required: bool
    field: str


def percentile(sorted_values: Sequence[int], share: float) -> int:
    """The nearest-rank percentile of values sorted ascending (0 for none)."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


def _keep_end(training: TrainingSettings) -> bool:
    return training.extra_args.get("truncation_mode") == "keep_end"


def _steps(sequences: int, training: TrainingSettings, world_size: int) -> int:
    batches = math.ceil(sequences / (training.per_device_batch_size * world_size))
    return max(1, math.ceil(batches / training.gradient_accumulation_steps)) if sequences else 0


def measure(
    examples: Sequence[tuple[int, Tokenized]],
    sizes: Sizes,
    training: TrainingSettings,
    settings: ValidationSettings,
    end_of_turn: EndOfTurn,
    describe: Callable[[int], str],
) -> ValidationReport:
    """The report for ``examples`` (index in the training set, tokens), after the checks.

    Raises ``DataError`` when more examples than ``validation.maxEmptyFraction`` keep no loss
    token after truncation, and ``ConfigError`` when the end-of-turn token is never in the loss.
    """
    limit, packing = training.max_length, training.packing
    lengths = sorted(len(t.input_ids) for _, t in examples)
    kept = [(i, t if packing else truncated(t, limit, _keep_end(training))) for i, t in examples]
    empty = [i for i, t in kept if not any(t.in_loss)]
    count = len(examples)
    if count and len(empty) / count > settings.max_empty_fraction:
        where = "" if packing else f" within training.maxLength ({limit} tokens)"
        raise DataError(
            f"dataset: {len(empty)} of {count} training examples have no token in the loss{where}, "
            f"more than validation.maxEmptyFraction ({settings.max_empty_fraction:g}) allows; e.g. "
            f"{describe(empty[0])}. Raise training.maxLength, shorten the prompts, or check the loss "
            "settings (assistantOnlyLoss, completionOnlyLoss)"
        )
    warnings: list[str] = []
    whole = [(i, t) for i, t in examples if (packing or len(t.input_ids) <= limit) and any(t.in_loss)]
    if end_of_turn.token_id is not None and whole:
        missing = [i for i, t in whole if not _ends_in_loss(t, end_of_turn.token_id)]
        if missing and len(missing) == len(whole) and end_of_turn.required:
            raise ConfigError(
                f"{end_of_turn.field}: the end-of-turn token {end_of_turn.token} is not in the loss of any "
                f"example (e.g. {describe(missing[0])}), so the model never learns to stop; with "
                "assistantOnlyLoss the template must write it inside {% generation %}…{% endgeneration %}"
            )
        if missing:
            warnings.append(
                f"{len(missing)} of {len(whole)} untruncated examples have no {end_of_turn.token} in the "
                f"loss, e.g. {describe(missing[0])}"
            )
    cut = sum(1 for n in lengths if n > limit)
    if count and not packing and cut / count > TRUNCATION_WARNING_FRACTION:
        warnings.append(
            f"{cut / count:.0%} of the examples are longer than training.maxLength ({limit}) and are cut "
            "(they lose their end and the model may never see them stop)"
        )
    if empty:
        warnings.append(f"{len(empty)} examples without loss tokens are dropped from training")
    scale = sizes.training_rows / count if count else 0.0
    tokens = round(scale * sum(len(t.input_ids) for _, t in kept))
    loss_tokens = round(scale * sum(sum(t.in_loss) for _, t in kept))
    sequences = math.ceil(tokens / limit) if packing else sizes.training_rows - round(scale * len(empty))
    steps = _steps(sequences, training, sizes.world_size)
    total = training.max_steps or math.ceil(training.epochs * steps)
    return ValidationReport(
        training_rows=sizes.training_rows,
        eval_rows=sizes.eval_rows,
        row_format=sizes.row_format,
        examples=count,
        empty_loss_examples=len(empty),
        tokens_p50=percentile(lengths, 0.5),
        tokens_p95=percentile(lengths, 0.95),
        tokens_max=lengths[-1] if lengths else 0,
        truncated_fraction=cut / count if count and not packing else 0.0,
        tokens_per_epoch=tokens,
        loss_tokens_per_epoch=loss_tokens,
        steps_per_epoch=steps,
        total_steps=total,
        warnings=[warning[:300] for warning in warnings[:5]],
    )


def _ends_in_loss(example: Tokenized, token_id: int) -> bool:
    return any(tid == token_id and loss for tid, loss in zip(example.input_ids, example.in_loss, strict=True))
