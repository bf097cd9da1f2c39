"""The memory estimate of a prepared run, from its model's config and its GPUs."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kubesft_api.memory_estimate import GIB, MemoryEstimate, ModelShape, estimate_memory

if TYPE_CHECKING:
    from kubesft_trainer.train import PreparedRun


log = logging.getLogger(__name__)


def _gpu_memory_gib() -> float | None:
    """The memory of the GPU this process sees, when it sees one."""
    import torch

    if not torch.cuda.is_available():
        return None
    return float(torch.cuda.get_device_properties(0).total_memory) / GIB


def memory_estimate(run: PreparedRun) -> MemoryEstimate | None:
    """Per-GPU memory of ``run`` on the job's nodes and processes, against this GPU's memory; None
    for a model whose config lacks the sizes the estimate needs."""
    config = getattr(run.trainer.model, "config", None)
    try:
        if config is None or not hasattr(config, "to_dict"):
            raise ValueError("the model has no config")
        shape = ModelShape.from_hf_config(config.to_dict(), parameters=run.parameters)
    except ValueError as error:
        log.info("no memory estimate: %s", error)
        return None
    return estimate_memory(shape, run.config, run.env.nnodes, run.env.nproc_per_node, _gpu_memory_gib())


def memory_lines(run: PreparedRun) -> list[str]:
    estimate = memory_estimate(run)
    return estimate.lines() if estimate is not None else ["memory estimate: unavailable for this model"]
