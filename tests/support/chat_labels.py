"""What a ChatML-rendered conversation must look like to the model, token by token."""

from __future__ import annotations

from typing import Any

ASSISTANT_HEADER = "<|im_start|>assistant\n"


def chatml(messages: list[dict[str, str]]) -> str:
    """The conversation as ChatML writes it, spelled out here rather than taken from the template."""
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)


def assistant_spans(text: str, messages: list[dict[str, str]]) -> list[tuple[int, int]]:
    """Character spans of each assistant reply and the <|im_end|> that closes it, found in the text."""
    spans, position = [], 0
    for message in messages:
        if message["role"] != "assistant":
            continue
        start = text.index(ASSISTANT_HEADER + message["content"], position) + len(ASSISTANT_HEADER)
        end = start + len(message["content"]) + len("<|im_end|>")
        assert text[start:end].endswith("<|im_end|>")
        spans.append((start, end))
        position = end
    return spans


def expected_tokens(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[list[int], list[bool]]:
    """The token ids of the ChatML text, and for each whether it carries loss under assistant-only loss."""
    text = chatml(messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans = assistant_spans(text, messages)
    trained = [any(s <= a and b <= e for s, e in spans) for a, b in encoded["offset_mapping"]]
    return list(encoded["input_ids"]), trained
