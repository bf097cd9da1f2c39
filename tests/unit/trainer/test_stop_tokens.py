"""The stop tokens every output form's generation config carries: the end of turn first."""

from __future__ import annotations

from pathlib import Path

from kubesft_trainer.model.stop_tokens import StopTokens


def test_the_end_of_turn_comes_first_then_the_tokenizers_and_the_base_models_eos(model: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.pad_token = "<|pad|>"
    base = GenerationConfig(eos_token_id=[7, tokenizer.eos_token_id], max_length=99)
    stop = StopTokens.of(tokenizer, "<|im_end|>", base)
    end, eos = (tokenizer.get_vocab()[token] for token in ("<|im_end|>", "<|endoftext|>"))
    assert stop.eos_token_ids == (end, eos, 7)
    assert StopTokens.of(tokenizer, None, None).eos_token_ids == (eos,)

    config = stop.generation_config(base)
    assert config.eos_token_id == [end, eos, 7] and config.pad_token_id == tokenizer.pad_token_id
    assert config.max_length == 99, "the rest of the base model's generation config is kept"
    assert base.eos_token_id == [7, eos], "the base config is not changed"

    loaded = AutoModelForCausalLM.from_pretrained(model)
    stop.apply(loaded)
    assert loaded.config.eos_token_id == end and loaded.generation_config.eos_token_id == [end, eos, 7]
