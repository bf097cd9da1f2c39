"""A TrainerCallback that feeds the Prometheus metrics, the progress report and a readable log line."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from kubesft_api.data_source import HELDOUT
from kubesft_trainer.reporting import metrics
from kubesft_trainer.reporting.eval_sets import baselines, regressed, set_losses
from kubesft_trainer.reporting.progress_tracker import ProgressTracker
from kubesft_trainer.reporting.startup import StartupTimeline, describe

log = logging.getLogger("kubesft_trainer.train")


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


class TelemetryCallback(TrainerCallback):
    """On rank 0: metrics, progress and one log line per logging step (and per evaluation)."""

    def __init__(
        self,
        tracker: ProgressTracker,
        write_line: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        gpu_memory: Callable[[], int] | None = None,
        guarded: tuple[str, ...] = (),
        retention_limit: float | None = None,
        startup: StartupTimeline | None = None,
    ) -> None:
        self._tracker = tracker
        self._startup = startup
        self._guarded, self._limit = guarded, retention_limit
        self._eval_losses: dict[str, float] = {}
        if retention_limit is not None:
            for name in guarded:
                metrics.EVAL_LOSS_MAX_INCREASE.labels(set=name).set(retention_limit)
        self._write_line = write_line or log.info
        self._clock = clock
        self._gpu_memory = gpu_memory
        if gpu_memory is not None:
            metrics.export_gpu_memory()
        self._last_tokens: float | None = None
        self._last_time = clock()

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        metrics.TRAIN_MAX_STEPS.set(state.max_steps)
        metrics.TRAIN_GLOBAL_STEP.set(state.global_step)
        self._tracker.start(state.global_step, state.max_steps or None)
        self._tracker.update(stage="Training")
        self._last_tokens, self._last_time = None, self._clock()
        if self._startup is not None:
            self._startup.begin("firstStep")

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        metrics.TRAIN_GLOBAL_STEP.set(state.global_step)
        if state.epoch is not None:
            metrics.TRAIN_EPOCH.set(state.epoch)
        phases = self._startup.finish() if self._startup is not None else None
        if phases:
            self._write_line(describe(phases))
        # The flags the default flow set for this step: what the trainer does next.
        stage = (
            "SavingCheckpoint" if control.should_save else "Evaluating" if control.should_evaluate else None
        )
        self._tracker.update(step=state.global_step, epoch=state.epoch, stage=stage)

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._tracker.update(stage="SavingCheckpoint" if control.should_save else "Training")

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._tracker.update(stage="Training")

    def _throughput(self, tokens: float | None) -> float | None:
        now = self._clock()
        if tokens is None:
            return None
        previous = 0.0 if self._last_tokens is None else self._last_tokens
        # TRL counts tokens from zero in each process; a smaller count means a new run.
        delta = tokens - previous if tokens >= previous else tokens
        elapsed = now - self._last_time
        self._last_tokens, self._last_time = tokens, now
        metrics.TRAIN_TOKENS.inc(delta)
        return delta / elapsed if elapsed > 0 else None

    def _on_eval(self, state: TrainerState, losses: dict[str, float]) -> None:
        baseline = baselines(state.log_history)
        for name, value in losses.items():
            metrics.EVAL_LOSS.labels(set=name).set(value)
            shown = "eval_loss" if name == HELDOUT else f"eval_loss[{name}]"
            against = f" (baseline {baseline[name]:.4f})" if name in baseline and state.global_step else ""
            self._write_line(f"step {state.global_step}/{state.max_steps} {shown} {value:.4f}{against}")
        for name, value in baseline.items():
            metrics.EVAL_BASELINE_LOSS.labels(set=name).set(value)
        self._eval_losses.update(losses)
        self._tracker.update(
            eval_loss=self._eval_losses.get(HELDOUT),
            eval_losses=dict(self._eval_losses),
            eval_baseline_losses=baseline or None,
            retention_regressed=(
                regressed(baseline, self._eval_losses, self._guarded, self._limit)
                if self._limit is not None
                else None
            ),
        )

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        logs = logs or {}
        if self._gpu_memory is not None:
            metrics.GPU_MEMORY_ALLOCATED.set(self._gpu_memory())
        losses = set_losses(logs)
        if losses:
            self._on_eval(state, losses)
        loss = _number(logs.get("loss"))
        if loss is None:
            return
        learning_rate = _number(logs.get("learning_rate"))
        grad_norm = _number(logs.get("grad_norm"))
        tokens_per_second = self._throughput(_number(logs.get("num_tokens")))
        metrics.TRAIN_LOSS.set(loss)
        for gauge, value in (
            (metrics.TRAIN_LEARNING_RATE, learning_rate),
            (metrics.TRAIN_GRAD_NORM, grad_norm),
            (metrics.TRAIN_TOKENS_PER_SECOND, tokens_per_second),
        ):
            if value is not None:
                gauge.set(value)
        self._tracker.update(
            step=state.global_step,
            epoch=state.epoch,
            loss=loss,
            learning_rate=learning_rate,
            tokens_per_second=tokens_per_second,
        )
        report = self._tracker.report()
        parts = [f"step {state.global_step}/{state.max_steps}"]
        if report.percent is not None:
            parts[0] += f" ({report.percent:.0f}%)"
        parts.append(f"loss {loss:.4f}")
        if learning_rate is not None:
            parts.append(f"lr {learning_rate:.3g}")
        if grad_norm is not None:
            parts.append(f"grad_norm {grad_norm:.3g}")
        if tokens_per_second is not None:
            parts.append(f"tokens/s {tokens_per_second:,.0f}")
        if state.epoch is not None:
            parts.append(f"epoch {state.epoch:.2f}")
        parts.append(f"eta {format_duration(report.eta_seconds)}")
        self._write_line(" | ".join(parts))
