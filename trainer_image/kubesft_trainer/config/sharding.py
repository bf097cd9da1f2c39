"""What ``training.sharding`` asks of transformers and accelerate: the FSDP2 settings of SFTConfig.

FSDP shards every transformer block (the layer class is found in the model itself), checkpoints
activations with FSDP's own wrapper (the Trainer's would all-gather every layer a second time),
keeps float32 master weights sharded while bf16/fp16 computes, lets only the first process of each
node read the checkpoint from disk (every rank then receives its shards from rank 0), and saves
checkpoints as one Distributed Checkpoint shard per rank.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from kubesft_api.training import TrainingSettings
from kubesft_trainer.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

SHARDED_STATE_DICT = "SHARDED_STATE_DICT"
FULL_STATE_DICT = "FULL_STATE_DICT"
VARLEN_ATTENTION = "flash_attention_2"


def sharded(training: TrainingSettings, world_size: int, planned_processes: int) -> bool:
    """Whether this process shards: ``training.sharding`` asks for it and it is one of several.

    ``planned_processes`` is the job's (nodes x processes per node): a job of one GPU trains
    unsharded, with a warning; ``--validate`` runs in one process of a larger job and stays quiet.
    """
    if training.sharding == "none":
        return False
    if planned_processes < 2:
        log.warning(
            "training.sharding is %s but the job trains on one GPU: nothing to shard over, so the "
            "model trains unsharded",
            training.sharding,
        )
    return world_size > 1


def fsdp_sft_kwargs(training: TrainingSettings, nnodes: int, nproc_per_node: int) -> dict[str, Any]:
    """The SFTConfig arguments of a sharded run (after ``sharded`` said it is one).

    Also tells transformers' loading that FSDP is on (``ACCELERATE_USE_FSDP``, which ``accelerate
    launch`` would set), so the CPU-RAM-efficient loading applies to the processes torchrun starts.
    """
    os.environ["ACCELERATE_USE_FSDP"] = "true"
    kwargs: dict[str, Any] = {
        "fsdp": True,
        "fsdp_config": {
            "version": 2,
            "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "reshard_after_forward": True,
            "activation_checkpointing": training.gradient_checkpointing,
            "cpu_ram_efficient_loading": True,
            "state_dict_type": SHARDED_STATE_DICT,
        },
    }
    if training.sharding == "fsdp-hybrid":
        from accelerate import ParallelismConfig

        kwargs["parallelism_config"] = ParallelismConfig(
            dp_replicate_size=nnodes, dp_shard_size=nproc_per_node
        )
    return kwargs


def check_sharding_device(training: TrainingSettings, cuda: bool) -> None:
    """fsdp-hybrid needs accelerate's device mesh (ParallelismConfig), which accelerate 1.15 builds
    only for GPU-like backends: on CPU it refuses the config as ``MULTI_CPU``."""
    if training.sharding == "fsdp-hybrid" and not cuda:
        raise ConfigError(
            "training.sharding: fsdp-hybrid needs GPUs (accelerate builds its hybrid device mesh only "
            "for GPU backends); use sharding: fsdp on CPU"
        )


def check_sharded_attention(training: TrainingSettings, attention: str) -> None:
    """Padding-free batches are only right with a varlen kernel; packing without one is allowed
    unsharded too, so it only warns."""
    if attention == VARLEN_ATTENTION:
        return
    if training.padding_free:
        raise ConfigError(
            f"training.paddingFree: with sharding: {training.sharding} it needs FlashAttention 2 "
            f"(a varlen kernel) on a GPU, and this run uses {attention}; turn paddingFree off"
        )
    if training.packing:
        log.warning(
            "training.packing with %s attention: packed samples can attend to each other; "
            "FlashAttention 2 keeps them apart",
            attention,
        )


def block_class_name(model: nn.Module) -> str:
    """The transformer block: the class repeated in the model's largest ``ModuleList``.

    Read from the model's structure, so any architecture (including remote code) is wrapped block by
    block without a table of class names.
    """
    from torch import nn

    best: tuple[int, str] | None = None
    for module in model.modules():
        if not isinstance(module, nn.ModuleList) or len(module) < 2:
            continue
        classes = {type(child).__name__ for child in module}
        if len(classes) != 1:
            continue
        size = sum(parameter.numel() for parameter in module.parameters())
        if best is None or size > best[0]:
            best = (size, classes.pop())
    if best is None:
        raise ConfigError(
            "training.sharding: the model has no list of repeated transformer blocks to shard "
            f"({type(model).__name__}); use sharding: none"
        )
    return best[1]
