"""The startup timeline: contiguous phases from the process start to the first step, published once."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import REGISTRY
from transformers import TrainerControl, TrainerState, TrainingArguments

from kubesft_trainer.reporting.progress_tracker import ProgressTracker
from kubesft_trainer.reporting.startup import (
    StartupTimeline,
    describe,
    process_started_at,
    rfc3339_millis,
)
from kubesft_trainer.reporting.telemetry import TelemetryCallback


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_each_phase_runs_from_its_begin_to_the_next_and_the_first_starts_at_the_process_start() -> None:
    clock = Clock(1_000.0)
    timeline = StartupTimeline(process_started=996.5, clock=clock)
    timeline.begin("setup")
    clock.now = 1_001.25
    timeline.begin("checkpointDownload")
    clock.now = 1_004.0
    timeline.begin("checkpointRestore")
    clock.now = 1_004.5

    phases = timeline.finish()

    assert phases is not None
    assert [(p.name, p.seconds) for p in phases] == [
        ("imports", 3.5),
        ("setup", 1.25),
        ("checkpointDownload", 2.75),
        ("checkpointRestore", 0.5),
    ]
    assert phases[0].started_at == rfc3339_millis(996.5) == "1970-01-01T00:16:36.500Z"
    assert REGISTRY.get_sample_value("kubesft_startup_seconds", {"phase": "checkpointDownload"}) == 2.75
    assert describe(phases) == (
        "started in 8.0 s to the end of the first step: "
        "imports 3.5 s, setup 1.2 s, checkpointDownload 2.8 s, checkpointRestore 0.5 s"
    )


def test_the_timeline_is_published_once_and_ignores_phases_after_it() -> None:
    clock = Clock(50.0)
    timeline = StartupTimeline(clock=clock)
    timeline.begin("setup")
    clock.now = 51.0
    assert timeline.finish() is not None
    timeline.begin("firstStep")
    clock.now = 60.0
    assert timeline.finish() is None
    assert [p.name for p in timeline.phases()] == ["setup"]
    assert timeline.phases()[0].model_dump(by_alias=True).keys() == {"name", "startedAt", "seconds"}


def test_a_clock_that_steps_back_gives_zero_not_a_negative_phase() -> None:
    clock = Clock(10.0)
    timeline = StartupTimeline(clock=clock)
    timeline.begin("modelLoad")
    clock.now = 9.0
    phases = timeline.finish()
    assert phases is not None and phases[0].seconds == 0.0


def test_telemetry_starts_the_first_step_phase_at_train_begin_and_logs_the_timeline_after_it(
    tmp_path: Path,
) -> None:
    clock = Clock(100.0)
    timeline = StartupTimeline(clock=clock)
    timeline.begin("trainerStart")
    lines: list[str] = []
    callback = TelemetryCallback(ProgressTracker(), write_line=lines.append, startup=timeline)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[])
    state, control = TrainerState(max_steps=10), TrainerControl()

    clock.now = 102.0
    callback.on_train_begin(args, state, control)
    clock.now = 102.5
    state.global_step = 1
    callback.on_step_end(args, state, control)
    state.global_step = 2
    callback.on_step_end(args, state, control)

    assert [(p.name, p.seconds) for p in timeline.phases()] == [("trainerStart", 2.0), ("firstStep", 0.5)]
    assert lines == ["started in 2.5 s to the end of the first step: trainerStart 2.0 s, firstStep 0.5 s"]


def test_the_process_start_comes_from_the_kernels_ticks_since_boot(tmp_path: Path) -> None:
    (tmp_path / "self").mkdir()
    # Field 22 (starttime) is 20th after the command name; 100 ticks a second on Linux.
    fields = ["S"] + ["0"] * 18 + ["250000"] + ["0"] * 10
    (tmp_path / "self" / "stat").write_text("4242 (python -m x) " + " ".join(fields) + "\n")
    (tmp_path / "uptime").write_text("3000.00 5000.00\n")
    started = process_started_at(tmp_path, clock=Clock(1_700_000_000.0))
    # Started 250000 ticks after boot, and boot was 3000 s before the clock's reading.
    assert started == 1_700_000_000.0 - 3000.0 + 250_000 / os.sysconf("SC_CLK_TCK")
    assert process_started_at(tmp_path / "missing") is None
