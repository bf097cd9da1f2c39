"""The SFTTrainer kubesft runs: TRL's, plus what a sharded (FSDP) run needs from it.

- The FSDP plugin wraps the block class found in the model and keeps reductions in float32.
- On CPU, accelerate 1.15 keeps a multi-process run as ``MULTI_CPU`` (data parallel) even with an
  FSDP plugin: ``AcceleratorState`` only switches GPU-like backends to ``DistributedType.FSDP``.
  PyTorch's ``fully_shard`` runs on CPU with gloo, so the run is switched to FSDP here; everything
  after that (wrapping, sharded checkpoints, resume, gathering) is the code a GPU run uses.
- ``save_model`` (the final model, not checkpoints) gathers a full state dict once, so the output is
  an ordinary unsharded Hugging Face model whatever format the checkpoints have.
"""

from __future__ import annotations

import logging
from typing import Any

from trl import SFTTrainer

from kubesft_trainer.config.precision import COMPUTE_DTYPES, Precision
from kubesft_trainer.config.sharding import FULL_STATE_DICT

log = logging.getLogger(__name__)


class KubesftSFTTrainer(SFTTrainer):  # type: ignore[misc]  # trl ships no type information
    def __init__(
        self, *args: Any, wrap_class: str | None = None, precision: Precision = "fp32", **kwargs: Any
    ) -> None:
        self._wrap_class = wrap_class
        self._precision = precision
        super().__init__(*args, **kwargs)

    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()
        plugin_args = self.args.fsdp_plugin_args
        if plugin_args is None:
            return
        from accelerate import PartialState
        from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

        state = self.accelerator.state
        if state.distributed_type == DistributedType.MULTI_CPU:
            state.fsdp_plugin = FullyShardedDataParallelPlugin(**plugin_args)
            # Both: every later AcceleratorState() copies the process state's distributed type.
            PartialState().distributed_type = DistributedType.FSDP
            state.distributed_type = DistributedType.FSDP
            self.is_fsdp_enabled = True
        plugin = state.fsdp_plugin
        if plugin is None:
            return
        if self._wrap_class is not None:
            plugin.transformer_cls_names_to_wrap = [self._wrap_class]
        if self._precision != "fp32":
            import torch
            from torch.distributed.fsdp import MixedPrecisionPolicy

            compute = getattr(torch, COMPUTE_DTYPES[self._precision])
            # The sharded float32 master weights are cast for compute only; gradients are
            # reduced in float32 so small updates survive the reduce-scatter.
            plugin.mixed_precision_policy = MixedPrecisionPolicy(
                param_dtype=compute, reduce_dtype=torch.float32, output_dtype=compute
            )
        log.info(
            "FSDP: sharding %s blocks, %s checkpoints, activation checkpointing %s",
            self._wrap_class,
            plugin.state_dict_type.name
            if hasattr(plugin.state_dict_type, "name")
            else plugin.state_dict_type,
            "on" if plugin.activation_checkpointing else "off",
        )

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Checkpoints (internal calls) keep the plugin's sharded format; the final model is gathered
        into one full state dict on rank 0 (every rank must call this)."""
        plugin = self.accelerator.state.fsdp_plugin if self.is_fsdp_enabled else None
        if plugin is None or _internal_call:
            super().save_model(output_dir, _internal_call=_internal_call)
            return
        saved = plugin.state_dict_type
        plugin.set_state_dict_type(FULL_STATE_DICT)
        try:
            super().save_model(output_dir, _internal_call=_internal_call)
        finally:
            plugin.set_state_dict_type(saved)
