"""The trainer's Prometheus metrics, in the default registry that rank 0 serves at ``/metrics``.

They carry no job labels: Prometheus adds namespace and pod, and the PodMonitor turns the pod
label ``kubesft.io/job`` into ``sftjob``.
"""

from __future__ import annotations

import functools

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info

TRAIN_LOSS = Gauge("kubesft_train_loss", "Training loss at the latest logging step.")
TRAIN_LEARNING_RATE = Gauge("kubesft_train_learning_rate", "Learning rate at the latest logging step.")
TRAIN_GRAD_NORM = Gauge("kubesft_train_grad_norm", "Gradient norm at the latest logging step.")
TRAIN_GLOBAL_STEP = Gauge("kubesft_train_global_step", "Optimizer steps done.")
TRAIN_MAX_STEPS = Gauge("kubesft_train_max_steps", "Optimizer steps planned.")
TRAIN_EPOCH = Gauge("kubesft_train_epoch", "Epochs done, fractional.")
TRAIN_TOKENS = Counter("kubesft_train_tokens", "Tokens trained on (all ranks, padding excluded).")
TRAIN_TOKENS_PER_SECOND = Gauge(
    "kubesft_train_tokens_per_second", "Training throughput over the latest logging interval, all ranks."
)
EVAL_LOSS = Gauge(
    "kubesft_eval_loss",
    "Evaluation loss at the latest evaluation, by set (heldout, dataset.evalSets).",
    ["set"],
)
EVAL_BASELINE_LOSS = Gauge(
    "kubesft_eval_baseline_loss",
    "Evaluation loss of each set before the first step (with dataset.evalSets).",
    ["set"],
)
EVAL_LOSS_MAX_INCREASE = Gauge(
    "kubesft_eval_loss_max_increase",
    "evaluation.maxRetentionLossIncrease of each set that guards retention: the most its loss may rise.",
    ["set"],
)
GPU_MEMORY_ALLOCATED = Gauge(
    "kubesft_gpu_memory_allocated_bytes",
    "GPU memory held by tensors on rank 0's device (CUDA only).",
    registry=None,
)
"""Served only once ``export_gpu_memory`` is called: on a CPU run a 0 would read as a measurement."""
TRAIN_INFO = Info("kubesft_train", "What this trainer fine-tunes: labels model and dataset.")

CHECKPOINT_SAVE_SECONDS = Histogram(
    "kubesft_checkpoint_save_seconds",
    "Time to save one checkpoint locally.",
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
CHECKPOINT_UPLOAD_SECONDS = Histogram(
    "kubesft_checkpoint_upload_seconds",
    "Time to upload one checkpoint.",
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
CHECKPOINT_UPLOAD_BYTES = Counter("kubesft_checkpoint_upload_bytes", "Bytes of checkpoints uploaded.")
CHECKPOINT_UPLOAD_FAILURES = Counter("kubesft_checkpoint_upload_failures", "Checkpoint uploads that failed.")
CHECKPOINT_LATEST_STEP = Gauge("kubesft_checkpoint_latest_step", "Step of the newest complete checkpoint.")
CHECKPOINT_RESUMED_FROM_STEP = Gauge(
    "kubesft_checkpoint_resumed_from_step",
    "Step of the checkpoint this run resumed from; 0 when it started from the beginning.",
)
STARTUP_SECONDS = Gauge(
    "kubesft_startup_seconds",
    "Seconds each phase of this trainer's start took, from the process start to the end of the first "
    "optimizer step (checkpointDownload and checkpointRestore are what a resume costs).",
    ["phase"],
)


@functools.cache
def export_gpu_memory() -> None:
    """Serve ``kubesft_gpu_memory_allocated_bytes`` from now on (rank 0, on CUDA); once only."""
    REGISTRY.register(GPU_MEMORY_ALLOCATED)
