"""Each training example as TRL tokenizes it: its token ids and which of them carry loss.

The same steps as TRL's SFTTrainer takes before training (chat template, EOS for plain text,
the completion and assistant masks), done with the tokenizer alone, so no weights are needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubesft_trainer.data.row_checks import RowFormat

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class LossMasking:
    """Which tokens the loss covers: assistant turns, completions, or everything."""

    assistant_only: bool
    completion_only: bool


@dataclass(frozen=True)
class Tokenized:
    """One example: token ids, and per token whether it carries loss."""

    input_ids: list[int]
    in_loss: list[bool]


def _ids(encoded: Any) -> list[int]:
    ids = encoded["input_ids"] if not isinstance(encoded, list) else encoded
    return [int(i) for i in ids]


def _chat(
    tokenizer: PreTrainedTokenizerBase, messages: list[Any], assistant_mask: bool, prompt: bool = False
) -> tuple[list[int], list[int] | None]:
    encoded: Any = tokenizer.apply_chat_template(
        messages,
        tokenize=True,
        return_dict=True,
        add_generation_prompt=prompt,
        return_assistant_tokens_mask=assistant_mask,
    )
    mask = encoded.get("assistant_masks") if assistant_mask else None
    return _ids(encoded), [int(bit) for bit in mask] if mask is not None else None


def _common_prefix(a: list[int], b: list[int]) -> int:
    length = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        length += 1
    return length


def tokenize_example(
    tokenizer: PreTrainedTokenizerBase, row: dict[str, Any], row_format: RowFormat, masking: LossMasking
) -> Tokenized:
    """``row`` (TRL's column names) as the model trains on it, before truncation."""
    eos = str(tokenizer.eos_token or "")
    masks: list[list[int]] = []
    if row_format == "messages":
        ids, assistant = _chat(tokenizer, row["messages"], masking.assistant_only)
        if assistant is not None:
            masks.append(assistant)
    elif row_format == "text":
        text = str(row["text"])
        ids = _ids(tokenizer(text if text.endswith(eos) else text + eos))
    else:
        prompt, completion = row["prompt"], row["completion"]
        if isinstance(prompt, list):
            prompt_ids, _ = _chat(tokenizer, prompt, False, prompt=True)
            ids, assistant = _chat(tokenizer, prompt + completion, masking.assistant_only)
            if assistant is not None:
                masks.append(assistant)
        else:
            completion = str(completion) if str(completion).endswith(eos) else f"{completion}{eos}"
            prompt_ids = _ids(tokenizer(str(prompt)))
            ids = _ids(tokenizer(str(prompt) + completion))
        if masking.completion_only:
            start = _common_prefix(prompt_ids, ids)
            masks.append([0] * start + [1] * (len(ids) - start))
    in_loss = [all(mask[i] for mask in masks) if masks else True for i in range(len(ids))]
    return Tokenized(ids, in_loss)


def truncated(example: Tokenized, max_length: int, keep_end: bool) -> Tokenized:
    """The example cut to ``max_length`` tokens, as TRL cuts it (keep_start unless keep_end)."""
    if len(example.input_ids) <= max_length:
        return example
    cut = slice(-max_length, None) if keep_end else slice(None, max_length)
    return Tokenized(example.input_ids[cut], example.in_loss[cut])
