"""The tokens generation stops at, written into every output form's ``generation_config.json``.

``generate()`` stops at the ids in the generation config's ``eos_token_id``, not at the
tokenizer's EOS. A base model's config names its own EOS (``</s>``, ``<|endoftext|>``), so a
model trained to end turns with ``<|im_end|>`` would run on past the end of its answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import GenerationConfig, PreTrainedTokenizerBase


@dataclass(frozen=True)
class StopTokens:
    """The end-of-turn token first, then the tokenizer's EOS and the base model's own."""

    eos_token_ids: tuple[int, ...]
    pad_token_id: int | None

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerBase, end_of_turn: str | None, base: Any | None) -> StopTokens:
        """``end_of_turn`` (None: the tokenizer's EOS) and ``base``'s generation config's EOS ids."""
        vocab = tokenizer.get_vocab()
        ids = [vocab[token] for token in (end_of_turn, tokenizer.eos_token) if token and token in vocab]
        ids += _ids(getattr(base, "eos_token_id", None))
        return cls(eos_token_ids=tuple(dict.fromkeys(ids)), pad_token_id=tokenizer.pad_token_id)

    def generation_config(self, base: GenerationConfig | None) -> GenerationConfig:
        """``base`` (the model's generation config) with these stop and pad tokens."""
        from transformers import GenerationConfig

        config = GenerationConfig.from_dict(base.to_dict()) if base is not None else GenerationConfig()
        config.eos_token_id = list(self.eos_token_ids)
        config.pad_token_id = self.pad_token_id
        return config

    def apply(self, model: Any) -> None:
        """Make a model about to be saved stop at these tokens, in its config and generation config."""
        if self.eos_token_ids:
            model.config.get_text_config().eos_token_id = self.eos_token_ids[0]
        model.generation_config = self.generation_config(getattr(model, "generation_config", None))

    def write(self, directory: Path, base: GenerationConfig | None) -> None:
        """Write ``generation_config.json`` into ``directory`` (a saved model or adapter)."""
        self.generation_config(base).save_pretrained(str(directory))


def _ids(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    return [int(item) for item in value]
