"""Where a trainer's start goes, phase by phase, from its process starting to the end of its first
optimizer step.

Every restart (a retry, a preemption, a resume after suspension) pays these phases again, and on a
resume two of them are the restore itself: ``checkpointDownload`` and ``checkpointRestore``. Rank 0
logs them in one line after the first step, sets ``kubesft_startup_seconds{phase}`` and writes them
to ``training_summary.json`` (``startup``), so the phase worth shortening is named, not guessed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from kubesft_trainer.reporting import metrics

StartupPhaseName = Literal[
    "imports",
    "setup",
    "modelFiles",
    "data",
    "modelLoad",
    "tokenizing",
    "checkpointDownload",
    "samples",
    "warmStart",
    "checkpointRestore",
    "trainerStart",
    "firstStep",
]
"""In the order they run. ``imports``: from the process start (the interpreter, imports, the config)
to training setup. ``setup``: checkpoint storage, MLflow and training arguments. ``modelFiles``:
finding or downloading the model and loading its tokenizer. ``data``: loading and checking the
dataset. ``modelLoad``: the weights into memory. ``tokenizing``: building the SFTTrainer, which
tokenizes the data. ``checkpointDownload``: waiting for the newest complete checkpoint to be
found and, to resume, downloaded with every file's sha256 checked; that starts before the imports
and runs beside the phases up to here, so this phase is what is left of it. ``samples``:
answering the sample prompts before training. ``warmStart``: downloading the weights of
checkpoints.resumeFrom. ``checkpointRestore`` (resuming) or ``trainerStart``: from starting the Trainer to its first
step: the optimizer and data loader and, to resume, loading the checkpoint's weights, optimizer and
scheduler state. ``firstStep``: the first optimizer step of this run, with the data loader's
fast-forward to the resumed position."""


class StartupPhase(BaseModel):
    """One phase of the trainer's start."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    name: StartupPhaseName
    started_at: str = Field(description="RFC 3339 in UTC, to the millisecond")
    seconds: float = Field(ge=0)


def rfc3339_millis(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def process_started_at(proc: Path = Path("/proc"), clock: Callable[[], float] = time.time) -> float | None:
    """When this process started (Unix time), from the kernel's record; None where there is no /proc.

    The kernel counts a process's start in clock ticks since boot; the uptime, read at the same
    moment as the clock, turns it into a time to 10 ms without the whole seconds of ``btime``.
    """
    try:
        now = clock()
        uptime = float((proc / "uptime").read_text().split()[0])
        fields = (proc / "self" / "stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])
    except (OSError, ValueError, IndexError):
        return None
    return now - uptime + ticks / os.sysconf("SC_CLK_TCK")


class StartupTimeline:
    """Contiguous phases: each ``begin`` ends the phase before it, ``finish`` ends the last one."""

    def __init__(self, process_started: float | None = None, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._phases: list[StartupPhase] = []
        self._open: tuple[StartupPhaseName, float] | None = None
        self._finished = False
        if process_started is not None:
            self._open = ("imports", process_started)

    def begin(self, name: StartupPhaseName) -> None:
        """End the current phase and start ``name``; after ``finish`` nothing more is recorded."""
        with self._lock:
            if self._finished:
                return
            now = self._clock()
            self._close(now)
            self._open = (name, now)

    def finish(self) -> list[StartupPhase] | None:
        """End the last phase and publish them all (metric); the phases the first time, then None."""
        with self._lock:
            if self._finished:
                return None
            self._close(self._clock())
            self._finished = True
            phases = list(self._phases)
        for phase in phases:
            metrics.STARTUP_SECONDS.labels(phase=phase.name).set(phase.seconds)
        return phases

    def phases(self) -> list[StartupPhase]:
        with self._lock:
            return list(self._phases)

    def _close(self, now: float) -> None:
        if self._open is None:
            return
        name, started = self._open
        self._phases.append(
            StartupPhase(
                name=name, started_at=rfc3339_millis(started), seconds=round(max(0.0, now - started), 3)
            )
        )
        self._open = None


def describe(phases: list[StartupPhase]) -> str:
    """The log line: the whole start, then each phase."""
    total = sum(phase.seconds for phase in phases)
    parts = [f"{phase.name} {phase.seconds:.1f} s" for phase in phases]
    return f"started in {total:.1f} s to the end of the first step: " + ", ".join(parts)
