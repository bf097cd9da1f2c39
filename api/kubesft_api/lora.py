"""spec.lora: parameter-efficient fine-tuning with LoRA, optionally on a quantized base (QLoRA)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    StringConstraints,
)

from kubesft_api.base import SpecModel


class LoraSettings(SpecModel):
    """Parameter-efficient fine-tuning with LoRA, optionally on a quantized base (QLoRA)."""

    enabled: bool = Field(default=False, description="Train LoRA adapters instead of all weights.")
    r: int = Field(default=16, description="LoRA rank.", ge=1, le=1024)
    alpha: int = Field(default=32, description="LoRA scaling alpha.", ge=1, le=4096)
    dropout: float = Field(default=0.05, description="Dropout on the LoRA path.", ge=0.0, lt=1.0)
    target_modules: list[Annotated[str, StringConstraints(min_length=1, max_length=256)]] = Field(
        default_factory=lambda: ["all-linear"],
        description="Module names to adapt, or all-linear.",
        min_length=1,
        max_length=256,
    )
    quantization: Literal["none", "4bit", "8bit"] = Field(
        default="none",
        description="Load the base model quantized with bitsandbytes (QLoRA). Needs CUDA.",
    )
    merge_on_finish: bool = Field(
        default=False,
        description="Also write a model with the adapters merged into the base weights.",
    )
