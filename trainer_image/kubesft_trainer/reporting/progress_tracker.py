"""Rank 0's view of training progress, updated by the telemetry callback and read by ``/progress``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from kubesft_api.progress import ProgressReport
from kubesft_api.times import now_text


class ProgressTracker:
    """Thread-safe latest values; ETA from the step rate since this run's first step."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._values: dict[str, Any] = {"step": 0}
        self._start: tuple[float, int] | None = None
        self._sources: list[Callable[[], dict[str, Any]]] = []

    def add_source(self, fields: Callable[[], dict[str, Any]]) -> None:
        """Another producer of ProgressReport fields (the checkpoint manager, the MLflow run), read
        on each report."""
        self._sources.append(fields)

    def start(self, step: int, total_steps: int | None) -> None:
        with self._lock:
            self._start = (self._clock(), step)
            self._values.update(step=step, total_steps=total_steps)

    def update(self, **values: Any) -> None:
        with self._lock:
            self._values.update({k: v for k, v in values.items() if v is not None})

    def _eta(self, step: int, total: int | None) -> float | None:
        if self._start is None or total is None:
            return None
        started, first_step = self._start
        done = step - first_step
        if done <= 0:
            return None
        return max(0.0, (total - step) * (self._clock() - started) / done)

    def report(self) -> ProgressReport:
        with self._lock:
            values = dict(self._values)
            step, total = values["step"], values.get("total_steps")
            values["eta_seconds"] = self._eta(step, total)
        if total:
            values["percent"] = min(100.0, 100.0 * step / total)
        for source in self._sources:
            values.update(source())
        values["updated_at"] = now_text()
        return ProgressReport(**values)
