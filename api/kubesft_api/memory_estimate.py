"""Per-GPU memory of a training run, estimated from the model's config before any GPU is held.

Rules of thumb (bytes per parameter): full fine-tuning keeps float32 master weights (4), float32
gradients (4) and AdamW's two float32 moments (8), 16 in all; FSDP divides them by the GPUs it
shards over. LoRA keeps the frozen base in the compute dtype (2 for bf16, about 0.55 at 4 bit) and
16 bytes per adapter parameter. Activations grow with maxLength x perDeviceBatchSize; activation
checkpointing keeps one tensor per layer instead of every layer's intermediates. The logits of the
vocabulary (with their float32 loss copy and gradient) are a term of their own, large for big
vocabularies. Everything here is an estimate: allocator fragmentation, the optimizer's choice and
kernels move it by a few GiB either way.

Pure and importable without torch: the operator's validation and the trainer's ``--validate`` both
call ``estimate_memory``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from kubesft_api.resources import Resources
from kubesft_api.trainer_config import TrainerConfig

GIB = 1024**3
ADAM_STATES = 2
"""AdamW keeps two moments per trainable parameter, in its dtype."""
LORA_TRAINABLE_BYTES = 16
"""float32 adapter weight, gradient and two AdamW moments."""
QUANTIZED_BYTES = {"4bit": 0.55, "8bit": 1.05}
"""bitsandbytes weights per parameter, with their scales."""
RUNTIME_OVERHEAD_GIB = 1.0
"""CUDA context, kernels' workspaces and the allocator's slack."""
GATHERED_UNITS = 2
"""FSDP holds the layer it computes and the one it prefetches unsharded (or the embeddings)."""
LOGIT_BYTES = 8
"""Per logit beyond the compute dtype: the float32 copy the loss upcasts to, and its gradient."""

_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
_QUANTITY = re.compile(r"^([0-9.]+)([eEinumkKMGTP]*)$")
_SUFFIX = {
    "": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
}
_GPU_GB = re.compile(r"(\d+)\s*gb", re.IGNORECASE)
_KNOWN_GPU_GIB = {
    "nvidia-tesla-t4": 15.0,
    "nvidia-l4": 22.0,
    "nvidia-tesla-v100": 16.0,
    "nvidia-tesla-a100": 40.0,
}
"""GKE accelerator names that do not say their memory."""


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class ModelShape(_Model):
    """The sizes of a decoder-only model the estimate needs."""

    parameters: int = Field(ge=1, description="All parameters (tied embeddings counted once).")
    layers: int = Field(ge=1)
    hidden_size: int = Field(ge=1)
    intermediate_size: int = Field(ge=1)
    vocab_size: int = Field(ge=1)
    kv_size: int = Field(ge=1, description="Width of the keys (and of the values): KV heads x head size.")
    embedding_parameters: int = Field(ge=0, description="Input and (untied) output embeddings.")

    @property
    def layer_parameters(self) -> int:
        return (self.parameters - self.embedding_parameters) // self.layers

    @classmethod
    def from_hf_config(cls, config: Mapping[str, Any], parameters: int | None = None) -> ModelShape:
        """From a transformers ``config.json`` of a Llama-like model; ``parameters`` (when counted
        on the model itself) replaces the count derived from the sizes."""
        source = config.get("text_config") or config

        def size(*names: str) -> int:
            for name in names:
                value = source.get(name)
                if isinstance(value, int) and value > 0:
                    return value
            raise ValueError(f"the model config has no {names[0]}")

        hidden = size("hidden_size", "n_embd", "d_model")
        layers = size("num_hidden_layers", "n_layer", "num_layers")
        heads = size("num_attention_heads", "n_head")
        vocab = size("vocab_size")
        intermediate = source.get("intermediate_size") or source.get("n_inner") or 4 * hidden
        head_dim = source.get("head_dim") or hidden // heads
        kv_size = int(source.get("num_key_value_heads") or heads) * int(head_dim)
        tied = bool(config.get("tie_word_embeddings", source.get("tie_word_embeddings", False)))
        embedding = vocab * hidden * (1 if tied else 2)
        attention = hidden * (heads * head_dim) * 2 + hidden * kv_size * 2
        per_layer = attention + 3 * hidden * int(intermediate) + 2 * hidden
        counted = embedding + layers * per_layer + hidden
        return cls(
            parameters=parameters or counted,
            layers=layers,
            hidden_size=hidden,
            intermediate_size=int(intermediate),
            vocab_size=vocab,
            kv_size=kv_size,
            embedding_parameters=embedding,
        )


class MemoryEstimate(_Model):
    """Estimated memory of one GPU, in GiB, by what it holds."""

    world_size: int = Field(description="GPUs (processes) training together.")
    shards: int = Field(description="GPUs the weights, gradients and optimizer state are split over.")
    parameters: int
    trainable_parameters: int
    weights_gib: float
    gradients_gib: float
    optimizer_gib: float
    gathered_gib: float = Field(description="Unsharded layers FSDP holds while it computes them.")
    activations_gib: float = Field(description="With the run's gradientCheckpointing setting.")
    activations_checkpointed_gib: float
    activations_full_gib: float = Field(description="Without activation checkpointing.")
    logits_gib: float
    overhead_gib: float
    total_gib: float
    gpu_memory_gib: float | None = Field(default=None, description="The GPU's memory, where known.")
    warning: str | None = None

    def lines(self) -> list[str]:
        """The estimate as ``--validate`` prints it."""
        shared = f"sharded over {self.shards}" if self.shards > 1 else "not sharded"
        out = [
            f"memory estimate per GPU: {self.total_gib:.1f} GiB ({self.world_size} GPU(s), {shared}; "
            f"{self.parameters / 1e9:.2f}B parameters, {self.trainable_parameters / 1e9:.3f}B trainable)",
            f"  weights {self.weights_gib:.1f}, gradients {self.gradients_gib:.1f}, optimizer "
            f"{self.optimizer_gib:.1f}, gathered layers {self.gathered_gib:.1f}, activations "
            f"{self.activations_gib:.1f} (checkpointed {self.activations_checkpointed_gib:.1f}, full "
            f"{self.activations_full_gib:.1f}), logits {self.logits_gib:.1f}, overhead {self.overhead_gib:.1f}",
        ]
        if self.warning:
            out.append(f"warning: {self.warning}")
        return out


def quantity_bytes(text: str) -> float:
    """A Kubernetes quantity (``80Gi``, ``81920M``) in bytes."""
    match = _QUANTITY.match(text.strip())
    if not match or match.group(2) not in _SUFFIX:
        raise ValueError(f"{text!r} is not a memory quantity such as 80Gi")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def gpu_memory_gib(resources: Resources) -> float | None:
    """``resources.gpuMemory``, else the memory a GPU label in ``nodeSelector`` names, else None."""
    if resources.gpu_memory is not None:
        return quantity_bytes(resources.gpu_memory) / GIB
    for key, value in resources.node_selector.items():
        if key.endswith("gpu.memory") and value.isdigit():
            return int(value) / 1024  # GPU feature discovery labels memory in MiB
        if "gpu" in key or "accelerator" in key:
            match = _GPU_GB.search(value)
            if match:
                return float(match.group(1)) * 1e9 / GIB
            if value.lower() in _KNOWN_GPU_GIB:
                return _KNOWN_GPU_GIB[value.lower()]
    return None


def _lora_trainable(shape: ModelShape, config: TrainerConfig) -> int:
    """Adapter parameters: r x (inputs + outputs) of each adapted projection of every layer."""
    h, i, kv = shape.hidden_size, shape.intermediate_size, shape.kv_size
    widths = {
        "q_proj": 2 * h,
        "k_proj": h + kv,
        "v_proj": h + kv,
        "o_proj": 2 * h,
        "gate_proj": h + i,
        "up_proj": h + i,
        "down_proj": h + i,
    }
    targets = config.lora.target_modules
    per_layer = sum(widths.values()) if "all-linear" in targets else sum(widths.get(t, 0) for t in targets)
    return config.lora.r * per_layer * shape.layers


def _compute_bytes(config: TrainerConfig) -> int:
    """Bytes of the dtype the matrix multiplications run in (auto is bf16 on current GPUs)."""
    return 4 if config.training.precision == "fp32" else 2


def _shards(config: TrainerConfig, nodes: int, gpus_per_node: int) -> int:
    sharding = config.training.sharding
    if sharding == "fsdp":
        return nodes * gpus_per_node
    if sharding == "fsdp-hybrid":
        return gpus_per_node
    return 1


def estimate_memory(
    shape: ModelShape,
    config: TrainerConfig,
    nodes: int,
    gpus_per_node: int,
    gpu_memory: float | None = None,
) -> MemoryEstimate:
    """The per-GPU memory of ``config`` on ``nodes`` x ``gpus_per_node`` GPUs; ``gpu_memory`` (GiB),
    when known, is what a warning compares the total with."""
    gpus_per_node = max(gpus_per_node, 1)
    shards = _shards(config, nodes, gpus_per_node)
    compute = _compute_bytes(config)
    training, lora = config.training, config.lora
    if lora.enabled:
        trainable = _lora_trainable(shape, config)
        base = QUANTIZED_BYTES.get(lora.quantization, compute)
        weights = (shape.parameters * base + trainable * 4) / shards
        gradients = trainable * 4 / shards
        optimizer = trainable * (LORA_TRAINABLE_BYTES - 8) / shards
    else:
        trainable = shape.parameters
        master = _DTYPE_BYTES.get(config.model.dtype, 4)
        weights = shape.parameters * master / shards
        gradients = shape.parameters * master / shards
        optimizer = shape.parameters * master * ADAM_STATES / shards
    largest = max(GATHERED_UNITS * shape.layer_parameters, shape.embedding_parameters)
    gathered = largest * compute if shards > 1 else 0
    tokens = training.per_device_batch_size * training.max_length
    h, i, kv = shape.hidden_size, shape.intermediate_size, shape.kv_size
    layer_full = tokens * compute * (6 * h + 2 * kv + 4 * i)
    full = shape.layers * layer_full
    checkpointed = shape.layers * tokens * h * compute + layer_full
    activations = checkpointed if training.gradient_checkpointing else full
    logits = tokens * shape.vocab_size * (compute + LOGIT_BYTES)
    total = weights + gradients + optimizer + gathered + activations + logits + RUNTIME_OVERHEAD_GIB * GIB
    estimate = MemoryEstimate(
        world_size=nodes * gpus_per_node,
        shards=shards,
        parameters=shape.parameters,
        trainable_parameters=trainable,
        weights_gib=weights / GIB,
        gradients_gib=gradients / GIB,
        optimizer_gib=optimizer / GIB,
        gathered_gib=gathered / GIB,
        activations_gib=activations / GIB,
        activations_checkpointed_gib=checkpointed / GIB,
        activations_full_gib=full / GIB,
        logits_gib=logits / GIB,
        overhead_gib=RUNTIME_OVERHEAD_GIB,
        total_gib=total / GIB,
        gpu_memory_gib=gpu_memory,
    )
    if gpu_memory is not None and estimate.total_gib > gpu_memory:
        warning = (
            f"the estimate ({estimate.total_gib:.1f} GiB per GPU) exceeds the GPU's "
            f"{gpu_memory:.0f} GiB; {_advice(config, shards, nodes * gpus_per_node)}"
        )
        estimate = estimate.model_copy(update={"warning": warning})
    return estimate


def _advice(config: TrainerConfig, shards: int, world: int) -> str:
    if not config.lora.enabled and shards < world:
        return "shard the model (training.sharding: fsdp) or train LoRA adapters (lora.enabled)"
    if not config.training.gradient_checkpointing:
        return "turn training.gradientCheckpointing on, or lower perDeviceBatchSize or maxLength"
    return "lower training.perDeviceBatchSize or maxLength, add GPUs, or train LoRA adapters"


def estimate_for_job(shape: ModelShape, config: TrainerConfig, resources: Resources) -> MemoryEstimate:
    """``estimate_memory`` for an SFTJob's spec: its GPUs and GPU memory hint."""
    return estimate_memory(shape, config, resources.nodes, resources.gpus_per_node, gpu_memory_gib(resources))
