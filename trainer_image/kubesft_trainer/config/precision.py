"""Training precision and the dtype the weights are loaded in.

Full fine-tuning keeps float32 master weights and lets bf16/fp16 autocast run the matrix
multiplications: in pure bf16 most small updates round away (at a learning rate of 2e-5 nearly
all of them). A LoRA base is frozen, so it is loaded in the dtype training computes in.
"""

from __future__ import annotations

from typing import Literal

from kubesft_api.lora import LoraSettings
from kubesft_api.model import ModelSource
from kubesft_trainer.errors import ConfigError

Precision = Literal["bf16", "fp16", "fp32"]

BF16_MIN_CAPABILITY = (8, 0)
"""Ampere and newer run bf16 natively; torch emulates it, slowly, on older GPUs."""

COMPUTE_DTYPES: dict[Precision, str] = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def native_bf16(capability: tuple[int, int] | None) -> bool:
    return capability is not None and capability >= BF16_MIN_CAPABILITY


def resolved_precision(setting: str, cuda: bool, capability: tuple[int, int] | None) -> Precision:
    """What ``training.precision`` means on this machine (``capability`` of the first GPU).

    auto: bf16 where the GPU runs it natively, fp16 with loss scaling on older GPUs, fp32 on CPU.
    """
    if setting == "auto":
        if not cuda:
            return "fp32"
        return "bf16" if native_bf16(capability) else "fp16"
    if setting == "fp16" and not cuda:
        raise ConfigError("training.precision: fp16 needs a CUDA GPU; use auto or fp32 on CPU")
    if setting not in COMPUTE_DTYPES:
        raise ConfigError(f"training.precision: unknown precision {setting!r}")
    return setting


def precision_warning(setting: str, cuda: bool, capability: tuple[int, int] | None) -> str | None:
    if setting == "bf16" and cuda and not native_bf16(capability):
        major, minor = capability or (0, 0)
        return (
            f"training.precision: bf16 on a GPU of compute capability {major}.{minor} is emulated and "
            "slow; auto picks fp16 with loss scaling here"
        )
    return None


def precision_flags(precision: Precision) -> dict[str, bool]:
    """The SFTConfig bf16 / fp16 flags."""
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def weights_dtype(source: ModelSource, lora: LoraSettings, precision: Precision) -> str:
    """The dtype ``from_pretrained`` loads the weights in, whatever dtype they were saved in.

    An explicit ``model.dtype`` is kept: with full fine-tuning in bfloat16 or float16 that is pure
    low-precision training, optimizer state included.
    """
    if source.dtype != "auto":
        if not lora.enabled and source.dtype == "float16" and precision == "fp16":
            raise ConfigError(
                "model.dtype: float16 weights cannot train with fp16 loss scaling; leave model.dtype "
                "auto for float32 master weights"
            )
        return source.dtype
    return COMPUTE_DTYPES[precision] if lora.enabled else "float32"


def pure_low_precision_warning(source: ModelSource, lora: LoraSettings) -> str | None:
    if lora.enabled or source.dtype not in ("bfloat16", "float16"):
        return None
    return (
        f"model.dtype is {source.dtype}: full fine-tuning trains purely in {source.dtype}, weights and "
        "optimizer state, and small updates round away; leave model.dtype auto for float32 master weights"
    )
