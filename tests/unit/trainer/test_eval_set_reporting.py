"""Evaluation losses by set as the Trainer logs them: the progress report, /metrics and the log
lines, each set against its baseline at step 0, and the retention check while the run goes on."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY, generate_latest
from transformers import TrainerControl, TrainerState, TrainingArguments

from kubesft_trainer.reporting.progress_tracker import ProgressTracker
from kubesft_trainer.reporting.telemetry import TelemetryCallback


def test_each_set_is_reported_against_its_baseline_and_a_guarded_rise_is_flagged(tmp_path: Path) -> None:
    tracker, lines = ProgressTracker(), list[str]()
    callback = TelemetryCallback(tracker, write_line=lines.append, guarded=("general",), retention_limit=0.1)
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    state, control = TrainerState(max_steps=20), TrainerControl()

    def evaluated(step: int, heldout: float, general: float) -> None:
        # transformers evaluates each set of a dict on its own and logs eval_<set>_loss at the step.
        state.global_step = step
        for key, value in (("eval_heldout_loss", heldout), ("eval_general_loss", general)):
            entry = {key: value, "eval_runtime": 0.5, "step": step}
            state.log_history.append(entry)
            callback.on_log(args, state, control, logs=entry)

    evaluated(0, heldout=2.0, general=3.0)
    evaluated(10, heldout=1.5, general=3.05)
    report = tracker.report()
    assert report.eval_losses == {"heldout": 1.5, "general": 3.05}
    assert report.eval_baseline_losses == {"heldout": 2.0, "general": 3.0}
    assert report.retention_regressed == [], "a rise within the limit"
    evaluated(20, heldout=1.2, general=3.4)
    report = tracker.report()
    assert report.eval_loss == 1.2, "evalLoss stays the heldout set's, for the Loss column"
    assert report.eval_losses == {"heldout": 1.2, "general": 3.4}
    assert report.retention_regressed == ["general"]
    wire = report.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert wire["evalBaselineLosses"] == {"heldout": 2.0, "general": 3.0}
    metrics = generate_latest(REGISTRY).decode()
    assert 'kubesft_eval_loss{set="general"} 3.4' in metrics
    assert 'kubesft_eval_loss{set="heldout"} 1.2' in metrics
    assert 'kubesft_eval_baseline_loss{set="general"} 3.0' in metrics
    assert 'kubesft_eval_loss_max_increase{set="general"} 0.1' in metrics
    assert 'kubesft_eval_loss_max_increase{set="heldout"}' not in metrics
    assert "step 0/20 eval_loss[general] 3.0000" in lines
    assert "step 20/20 eval_loss[general] 3.4000 (baseline 3.0000)" in lines
    assert "step 20/20 eval_loss 1.2000 (baseline 2.0000)" in lines
