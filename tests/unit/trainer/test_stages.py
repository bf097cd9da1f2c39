"""The stage /progress reports while the trainer trains: from the Trainer's own flags for the step."""

from __future__ import annotations

from transformers import TrainerControl, TrainerState, TrainingArguments

from kubesft_trainer.reporting.progress_tracker import ProgressTracker
from kubesft_trainer.reporting.telemetry import TelemetryCallback


def test_stages_follow_training_evaluation_and_checkpoint_saves(tmp_path: object) -> None:
    tracker = ProgressTracker()
    callback = TelemetryCallback(tracker, write_line=lambda _: None)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[])
    state = TrainerState(max_steps=10)
    control = TrainerControl()
    callback.on_train_begin(args, state, control)
    assert tracker.report().stage == "Training"

    state.global_step = 5
    control.should_evaluate = True
    callback.on_step_end(args, state, control)
    assert tracker.report().stage == "Evaluating"
    control.should_evaluate, control.should_save = False, True
    callback.on_evaluate(args, state, control)
    assert tracker.report().stage == "SavingCheckpoint"
    callback.on_save(args, state, control)
    assert tracker.report().stage == "Training"

    control.should_save = False
    callback.on_step_end(args, state, control)
    assert tracker.report().stage == "Training"
