"""LoRA and QLoRA through peft: the adapter config, the quantized base, and the merged model."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubesft_api.lora import LoraSettings
from kubesft_trainer.config.precision import COMPUTE_DTYPES, Precision
from kubesft_trainer.errors import ConfigError
from kubesft_trainer.model.stop_tokens import StopTokens

if TYPE_CHECKING:
    from peft import LoraConfig
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def check_quantization(settings: LoraSettings, cuda: bool) -> None:
    """QLoRA needs a CUDA GPU and bitsandbytes; say so before loading anything."""
    if settings.quantization == "none":
        return
    if not cuda:
        raise ConfigError(
            f"lora.quantization: {settings.quantization} needs a CUDA GPU (bitsandbytes); this pod has none. "
            "Set resources.gpusPerNode, or quantization: none"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(
            f"lora.quantization: {settings.quantization} needs the bitsandbytes package, which this image lacks; "
            "use an image with it, or quantization: none"
        )


def quantization_config(settings: LoraSettings, precision: Precision) -> Any | None:
    """The bitsandbytes config QLoRA loads the base with: NF4 with double quantization, as in the
    QLoRA paper, computing in the training precision's dtype (bf16 only where the GPU has it)."""
    if settings.quantization == "none":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    if settings.quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=getattr(torch, COMPUTE_DTYPES[precision]),
    )


def peft_config(settings: LoraSettings, added_token_ids: list[int]) -> LoraConfig | None:
    """The adapter to train, or None for full fine-tuning.

    Tokens the tokenizer gained (e.g. ChatML's markers on a base model) have untrained
    embeddings, so their rows of the embedding matrix are trained too.
    """
    if not settings.enabled:
        return None
    from peft import LoraConfig

    targets: str | list[str] = settings.target_modules
    if settings.target_modules == ["all-linear"]:
        targets = "all-linear"
    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
        trainable_token_indices=list(added_token_ids) or None,
    )


def write_merged_model(
    adapter_dir: Path,
    merged_dir: Path,
    load_base: Callable[[], PreTrainedModel],
    tokenizer: PreTrainedTokenizerBase,
    stop: StopTokens,
) -> None:
    """Merge the saved adapter into a freshly loaded, unquantized base and save the result, stopping
    at ``stop`` rather than at the base model's own EOS."""
    from peft import PeftModel

    merged = PeftModel.from_pretrained(load_base(), str(adapter_dir)).merge_and_unload()
    stop.apply(merged)
    merged.save_pretrained(str(merged_dir))
    tokenizer.save_pretrained(str(merged_dir))
