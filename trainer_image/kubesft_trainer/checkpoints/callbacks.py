"""The Trainer callback that hands each saved checkpoint to the uploader and turns SIGTERM into save+stop."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from kubesft_trainer.checkpoints.manifest import checkpoint_name
from kubesft_trainer.checkpoints.preemption import PreemptionSignal
from kubesft_trainer.reporting import metrics

log = logging.getLogger(__name__)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class CheckpointCallback(TrainerCallback):
    """Runs on every rank; ranks with nothing to do with a save pass no ``on_checkpoint``.

    ``on_checkpoint(step, folder)`` receives each local checkpoint right after the Trainer wrote
    it, on every rank's files (the ranks meet at a barrier first, so their shards and RNG files are
    there). In a multi-node run every rank passes it: the nodes share their files (a collective).
    """

    def __init__(
        self,
        preemption: PreemptionSignal,
        on_checkpoint: Callable[[int, Path], None] | None,
    ) -> None:
        self.preemption = preemption
        self.on_checkpoint = on_checkpoint
        self.stopped_for_preemption = False
        self._save_started: float | None = None

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.preemption.training = True
        if self.preemption.received:
            log.warning("SIGTERM arrived while training was starting; stopping after the first step")

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        preempted = self.preemption.received
        if _distributed():
            # Every rank must stop at the same step, or the ones that go on hang in the next
            # collective; any rank that saw SIGTERM stops them all.
            flag = torch.tensor([1 if preempted else 0], device=args.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            preempted = bool(flag.item())
            if preempted:
                self.preemption.request()
        if preempted and not self.stopped_for_preemption:
            self.stopped_for_preemption = True
            log.warning("preempted: saving %s and stopping", checkpoint_name(state.global_step))
            control.should_save = True
            control.should_training_stop = True
        if control.should_save:
            self._save_started = time.monotonic()

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        # Evaluation runs between the step end and the save; it is not part of the save time.
        if self._save_started is not None:
            self._save_started = time.monotonic()

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if _distributed():
            dist.barrier()
        if self.on_checkpoint is None:
            self._save_started = None
            return
        folder = Path(str(args.output_dir)) / checkpoint_name(state.global_step)
        self.on_checkpoint(state.global_step, folder)
        if self._save_started is not None:
            metrics.CHECKPOINT_SAVE_SECONDS.observe(time.monotonic() - self._save_started)
            self._save_started = None
