"""The trainer's command line: exit codes and the reason line for a bad config."""

from __future__ import annotations

from pathlib import Path

from kubesft_api import exit_codes
from kubesft_trainer.reporting.failure_report import ERROR_PREFIX
from tests.support.trainer import last_stderr_line, run_trainer, trainer_config, write_config


def test_cli_exit_codes_for_a_missing_and_an_invalid_config(tmp_path: Path) -> None:
    missing = run_trainer(tmp_path / "missing.yaml", tmp_path / "work")
    assert missing.returncode == exit_codes.INVALID_CONFIG
    assert last_stderr_line(missing).startswith(ERROR_PREFIX + "config file")
    raw = trainer_config(tmp_path, tmp_path / "d.jsonl", tmp_path / "out", training={"learningRate": -1})
    invalid = run_trainer(write_config(tmp_path / "c.yaml", raw), tmp_path / "work")
    assert invalid.returncode == exit_codes.INVALID_CONFIG
    assert "spec.training.learningRate: must be > 0, got -1" in last_stderr_line(invalid)
