"""Builds a tiny Llama-style causal LM and small datasets on disk, for tests and the demo.

The model is saved with ``save_pretrained`` exactly like a hub checkpoint, without a chat
template (like a base model such as SmolLM2-135M), so the trainer loads it through the same
code path as a real model.
"""

from __future__ import annotations

import json
import pathlib
import random
from typing import Any

TOPICS = ["rust", "python", "kubernetes", "gpus", "tea", "rivers", "haiku", "chess", "bread", "stars"]
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]


def chat_rows(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """Conversations in ``messages`` format with a learnable pattern."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        topic = TOPICS[i % len(TOPICS)]
        n = rng.randint(1, 9)
        messages = [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": f"Tell me {n} things about {topic}."},
            {
                "role": "assistant",
                "content": f"Here are {n} things about {topic}: " + f"{topic} is nice. " * 2,
            },
        ]
        if i % 3 == 0:
            messages += [
                {"role": "user", "content": f"And one more about {topic}?"},
                {"role": "assistant", "content": f"One more: {topic} is great."},
            ]
        rows.append({"messages": messages})
    return rows


def prompt_completion_rows(count: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {"prompt": f"Question: what is {a} plus {b}?\nAnswer:", "completion": f" {a + b}."}
        for a, b in ((rng.randint(0, 20), rng.randint(0, 20)) for _ in range(count))
    ]


def text_rows(count: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [{"text": f"The {rng.choice(TOPICS)} story number {i} ends well."} for i in range(count)]


def write_jsonl(path: pathlib.Path, rows: list[dict[str, Any]]) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def build_tiny_model(
    directory: pathlib.Path,
    hidden_size: int = 64,
    layers: int = 2,
    vocab_size: int = 512,
    seed: int = 0,
) -> pathlib.Path:
    """Train a byte-level BPE tokenizer on the sample data and save a random-init Llama."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    corpus = [m["content"] for row in chat_rows(200) for m in row["messages"]]
    corpus += [r["prompt"] + r["completion"] for r in prompt_completion_rows(200)]
    corpus += [r["text"] for r in text_rows(200)]
    corpus += ["system", "user", "assistant", "\n"]

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=None,
        eos_token="<|endoftext|>",
        unk_token=None,
        model_max_length=2048,
    )
    tokenizer.save_pretrained(directory)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        pad_token_id=None,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory", type=pathlib.Path)
    args = parser.parse_args()
    model_dir = build_tiny_model(args.directory / "model")
    write_jsonl(args.directory / "data/chat.jsonl", chat_rows(64))
    print(model_dir)


if __name__ == "__main__":
    main()
