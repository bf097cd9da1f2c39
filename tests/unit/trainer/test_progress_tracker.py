"""The progress report the trainer serves: percent and ETA from the steps done."""

from __future__ import annotations

import pytest

from kubesft_trainer.reporting.progress_tracker import ProgressTracker


def test_progress_report_percent_and_eta() -> None:
    now = [100.0]
    tracker = ProgressTracker(clock=lambda: now[0])
    tracker.start(step=10, total_steps=110)
    now[0] = 120.0
    tracker.update(step=30, loss=1.5, learning_rate=1e-4)
    tracker.add_source(lambda: {"latest_checkpoint": "s3://b/ckpt/checkpoint-30", "resumed_from_step": 10})
    report = tracker.report()
    assert report.step == 30 and report.total_steps == 110
    assert report.percent == pytest.approx(100 * 30 / 110)
    assert report.eta_seconds == pytest.approx(80.0)  # 80 steps left at one step per second
    assert report.latest_checkpoint == "s3://b/ckpt/checkpoint-30"
    wire = report.model_dump(by_alias=True)
    assert {"totalSteps", "etaSeconds", "learningRate", "updatedAt", "resumedFromStep"} <= set(wire)
