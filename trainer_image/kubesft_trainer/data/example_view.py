"""Shows a tokenized example as the model sees it, with the tokens that carry loss marked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

LOSS_START = "⟦"
LOSS_END = "⟧"
IGNORED = -100


def loss_spans(labels: Sequence[int]) -> list[tuple[int, int, bool]]:
    """Runs of consecutive tokens as (start, stop, carries_loss)."""
    spans: list[tuple[int, int, bool]] = []
    start = 0
    for index in range(1, len(labels) + 1):
        if index == len(labels) or (labels[index] != IGNORED) != (labels[start] != IGNORED):
            spans.append((start, index, labels[start] != IGNORED))
            start = index
    return spans


def render_example(
    tokenizer: PreTrainedTokenizerBase, input_ids: Sequence[int], labels: Sequence[int]
) -> str:
    """The decoded text, with each span that carries loss between ⟦ and ⟧."""
    parts = []
    for start, stop, trained in loss_spans(labels):
        text = str(tokenizer.decode(list(input_ids[start:stop]), skip_special_tokens=False))
        parts.append(f"{LOSS_START}{text}{LOSS_END}" if trained else text)
    return "".join(parts)


def describe_example(
    tokenizer: PreTrainedTokenizerBase, input_ids: Sequence[int], labels: Sequence[int]
) -> str:
    trained = sum(1 for label in labels if label != IGNORED)
    header = (
        f"First training example: {len(input_ids)} tokens, {trained} of them carry loss "
        f"(between {LOSS_START} and {LOSS_END}):"
    )
    return f"{header}\n{render_example(tokenizer, input_ids, labels)}"
