"""The launcher: two training processes on CPU (gloo) under torchrun, as in a pod, and the exit code
it keeps out of theirs."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubesft_api import exit_codes
from kubesft_trainer.launcher import Outcome, decide
from kubesft_trainer.reporting.failure_report import ERROR_PREFIX
from testing.tinymodel import chat_rows, write_jsonl
from tests.support.trainer import (
    last_stderr_line,
    run_trainer,
    summary,
    trainer_config,
    write_config,
)


@pytest.mark.slow
def test_two_processes_train_one_model_and_only_rank_zero_writes_it(model: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(64))
    output = tmp_path / "out"
    raw = trainer_config(model, data, output, training={"assistantOnlyLoss": True, "maxSteps": 8})
    result = run_trainer(
        write_config(tmp_path / "c.yaml", raw), tmp_path / "work", KUBESFT_NPROC_PER_NODE="2"
    )
    assert result.returncode == 0, result.stderr[-4000:]
    lines = result.stderr.splitlines()
    for rank in (0, 1):
        assert any(f"[rank {rank}] INFO kubesft_trainer.train: training" in line for line in lines), rank
    writes = [line for line in lines if "wrote the model to" in line]
    assert len(writes) == 1 and "[rank 0]" in writes[0]
    servers = [line for line in lines if "serving /metrics and /progress" in line]
    assert len(servers) == 1 and "[rank 0]" in servers[0]
    facts = summary(output)
    assert facts["worldSize"] == 2
    assert facts["globalStep"] == 8
    # 64 rows, 8 per process and step, 2 processes: one epoch every 4 steps.
    assert facts["epoch"] == pytest.approx(2.0)
    assert (output / "model.safetensors").is_file()


@pytest.mark.slow
def test_a_permanent_failure_keeps_its_exit_code_through_torchrun(model: Path, tmp_path: Path) -> None:
    rows = chat_rows(16)
    rows[7]["messages"][2]["content"] = ""
    data = write_jsonl(tmp_path / "chat.jsonl", rows)
    raw = trainer_config(model, data, tmp_path / "out")
    result = run_trainer(
        write_config(tmp_path / "c.yaml", raw), tmp_path / "work", KUBESFT_NPROC_PER_NODE="2"
    )
    assert result.returncode == exit_codes.INVALID_DATA, result.stderr[-4000:]
    line = last_stderr_line(result)
    assert line.startswith(ERROR_PREFIX) and "row 7: messages[2].content is empty" in line
    assert not (tmp_path / "out").exists()


def test_launcher_keeps_the_exit_code_that_matters() -> None:
    ranks = range(0, 2)
    ok = [Outcome(0, 0, None), Outcome(1, 0, None)]
    assert decide(ok, ranks, None) == (exit_codes.SUCCESS, None)
    bad_data = [Outcome(0, 65, "row 3 is bad"), Outcome(1, 65, "row 3 is bad")]
    assert decide(bad_data, ranks, "torchrun: failed") == (exit_codes.INVALID_DATA, "row 3 is bad")
    preempted = [Outcome(0, 75, "preempted at step 4"), Outcome(1, 75, None)]
    assert decide(preempted, ranks, "stopped by SIGTERM") == (exit_codes.PREEMPTED, "preempted at step 4")
    crashed = [Outcome(0, 75, None), Outcome(1, 1, "NCCL timeout")]
    assert decide(crashed, ranks, None) == (exit_codes.RUNTIME_FAILURE, "NCCL timeout")
    code, reason = decide([Outcome(0, 0, None)], ranks, "torchrun: exitcode -9")
    assert code == exit_codes.RUNTIME_FAILURE
    assert reason is not None and "rank 1 exited without a result" in reason and "-9" in reason
