"""The trainer's progress as the operator shows it: text, ETA, and patches only on change."""

from __future__ import annotations

from kubesft_api.progress import ProgressReport
from kubesft_operator.progress import eta_text, progress_patch, progress_text


def test_progress_text_and_eta() -> None:
    assert progress_text(ProgressReport(step=420, total_steps=1000)) == "420/1000 (42%)"
    assert progress_text(ProgressReport(step=999, total_steps=1000)) == "999/1000 (99%)"
    assert progress_text(ProgressReport(step=7)) == "7 steps"
    assert [eta_text(s) for s in (45, 720, 3900, 2 * 86400 + 3 * 3600, None)] == [
        "45s",
        "12m",
        "1h05m",
        "2d3h",
        None,
    ]


def test_progress_patch_only_when_values_change() -> None:
    report = ProgressReport(
        step=10,
        total_steps=40,
        loss=2.5,
        eta_seconds=30,
        updated_at="t1",
        latest_checkpoint="s3://ckpt/chat/checkpoint-10",
    )
    patch = progress_patch({}, report)
    assert patch is not None
    assert patch["progressText"] == "10/40 (25%)" and patch["etaText"] == "30s"
    assert patch["latestCheckpoint"] == "s3://ckpt/chat/checkpoint-10"
    assert patch["progress"]["totalSteps"] == 40
    status = {"progress": patch["progress"]}
    assert progress_patch(status, report.model_copy(update={"updated_at": "t2"})) is None
    assert progress_patch(status, report.model_copy(update={"step": 11})) is not None
