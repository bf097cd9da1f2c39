"""Speed settings kubesft picks by itself from the hardware and the installed kernels.

The spec's own settings (precision, ``packing``) are applied by ``precision`` and ``sft_args``;
this module adds what no spec field names: the attention kernel and Liger's fused kernels. ``training.extraArgs`` still overrides the SFTConfig ones.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

LIGER_MIN_CAPABILITY = (8, 0)
"""Liger's Triton kernels crash on GPUs older than Ampere."""


@dataclass(frozen=True)
class Accelerator:
    """What this process trains on."""

    cuda: bool
    capability: tuple[int, int] | None = None
    """CUDA compute capability of the first visible GPU."""

    @classmethod
    def detect(cls) -> Accelerator:
        import torch

        if not torch.cuda.is_available():
            return cls(cuda=False)
        major, minor = torch.cuda.get_device_capability(0)
        return cls(cuda=True, capability=(major, minor))


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def attention_implementation(accelerator: Accelerator, packing: bool) -> str:
    """FlashAttention 2 for packed batches on a GPU when it is installed, since only its varlen
    kernel keeps packed samples from attending to each other; PyTorch's SDPA otherwise."""
    if accelerator.cuda and packing and _installed("flash_attn"):
        return "flash_attention_2"
    return "sdpa"


def tuned_sft_defaults(accelerator: Accelerator) -> dict[str, Any]:
    """SFTConfig arguments that only make training faster on this hardware."""
    defaults: dict[str, Any] = {}
    capable = accelerator.capability is not None and accelerator.capability >= LIGER_MIN_CAPABILITY
    if accelerator.cuda and capable and _installed("liger_kernel"):
        defaults["use_liger_kernel"] = True
    return defaults
