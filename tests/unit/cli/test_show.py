"""What ``status``, ``list`` and the ``wait`` bar show for a status, to the character."""

from __future__ import annotations

import datetime
import io

from kubesft.client import Event
from kubesft.commands.follow import StatusBar
from kubesft.commands.show import human_duration, job_table, status_text
from kubesft.job import SFTJob
from tests.unit.cli.fake_api import sftjob

NOW = datetime.datetime(2025, 1, 1, 0, 10, tzinfo=datetime.UTC)


def at(minute: int, second: int = 0) -> datetime.datetime:
    return datetime.datetime(2025, 1, 1, 0, minute, second, tzinfo=datetime.UTC)


RUNNING = SFTJob.from_dict(
    sftjob(
        phase="Running",
        attempt=1,
        restarts=1,
        startTime="2025-01-01T00:01:00Z",
        progress={
            "step": 420,
            "totalSteps": 1000,
            "epoch": 0.42,
            "loss": 1.18321,
            "evalLoss": 1.25,
            "learningRate": 4.2e-5,
            "tokensPerSecond": 5120.4,
            "etaSeconds": 840,
            "resumedFromStep": 400,
            "checkpointUploadFailures": 2,
            "checkpointStatus": "last upload: timeout",
        },
        progressText="420/1000 (42%)",
        etaText="14m",
        latestCheckpoint="s3://bucket/ckpt/checkpoint-400",
        conditions=[
            {"type": "Created", "status": "True", "reason": "JobCreated", "message": "created Job smol-1"},
            {"type": "Running", "status": "True", "reason": "Training", "message": "training"},
        ],
        stage="Training",
        validation={
            "trainingRows": 1000,
            "rowFormat": "messages",
            "examples": 1000,
            "tokensP50": 230,
            "tokensP95": 610,
            "tokensMax": 900,
            "truncatedFraction": 0.012,
            "tokensPerEpoch": 250000,
            "stepsPerEpoch": 125,
            "totalSteps": 1000,
        },
    )
)
EVENTS = [
    Event("Normal", "JobCreated", "created Job smol-0", 1, at(0, 5)),
    Event("Warning", "Preempted", "node lost; retrying from checkpoint-400", 1, at(6)),
    Event("Normal", "Training", "step 420/1000", 3, at(9, 30)),
]


def test_status_of_a_running_job() -> None:
    assert status_text(RUNNING, EVENTS, NOW) == "\n".join(
        [
            "Name:           smol",
            "Namespace:      team",
            "Phase:          Running (attempt 1, restarts 1)",
            "Stage:          Training",
            "Validation:     1000 training rows (messages); tokens per example p50 230, p95 610, max 900; "
            "1.2% truncated at maxLength; 0 of 1000 examples without loss tokens; about 250000 tokens "
            "and 125 steps per epoch, 1000 steps planned",
            "Progress:       420/1000 (42%), epoch 0.42",
            "Loss:           1.183 (eval 1.25)",
            "Learning rate:  4.2e-05",
            "Throughput:     5,120 tokens/s",
            "ETA:            14m",
            "Resumed from:   step 400",
            "Storage:        2 checkpoint uploads failed; last upload: timeout",
            "Started:        2025-01-01T00:01:00Z",
            "Checkpoint:     s3://bucket/ckpt/checkpoint-400",
            "Output:         s3://bucket/out",
            "Conditions:",
            "  Created    True   JobCreated  created Job smol-1",
            "  Running    True   Training    training",
            "Events (last 8):",
            "   9m55s ago  Normal   JobCreated         created Job smol-0",
            "      4m ago  Warning  Preempted          node lost; retrying from checkpoint-400",
            "     30s ago  Normal   Training           step 420/1000 (x3)",
        ]
    )


def test_status_before_the_operator_wrote_any() -> None:
    assert status_text(SFTJob.from_dict(sftjob()), [], NOW) == "\n".join(
        [
            "Name:           smol",
            "Namespace:      team",
            "Phase:          - (the operator has not seen it yet)",
            "Output:         s3://bucket/out",
            "Events: none",
        ]
    )


def test_the_list_table() -> None:
    done = SFTJob.from_dict(
        sftjob(
            "done", phase="Succeeded", progress={"step": 7, "loss": 0.5}, progressText="7 steps", etaText="0s"
        )
    )
    assert job_table([RUNNING, done, SFTJob.from_dict(sftjob("new"))], now=NOW) == "\n".join(
        [
            "NAME   PHASE       PROGRESS         LOSS    ETA   RESTARTS   AGE",
            "smol   Running     420/1000 (42%)   1.183   14m   1          10m",
            "done   Succeeded   7 steps          0.5     -     0          10m",
            "new    -           -                -       -     0          10m",
        ]
    )
    assert job_table([RUNNING], namespaces=True, now=NOW).splitlines()[1].split()[:2] == ["team", "smol"]
    suspended = SFTJob.from_dict({**RUNNING.raw, "status": {**RUNNING.raw["status"], "phase": "Suspended"}})
    assert job_table([suspended], now=NOW).splitlines()[1].split()[5] == "-"
    assert "ETA:" not in status_text(suspended, [], NOW)


def test_ages_as_kubectl_shows_them() -> None:
    seconds = [
        -5,
        45,
        119,
        200,
        600,
        2700,
        3 * 3600,
        5 * 3600 + 1800,
        30 * 3600,
        2 * 86400 + 3 * 3600,
        9 * 86400,
    ]
    assert [human_duration(s) for s in seconds] == [
        "0s",
        "45s",
        "119s",
        "3m20s",
        "10m",
        "45m",
        "3h",
        "5h30m",
        "30h",
        "2d3h",
        "9d",
    ]
    assert human_duration(800 * 86400) == "2y70d"


def test_no_bar_before_a_progress_report() -> None:
    stream = io.StringIO()
    failed = sftjob(
        phase="Failed",
        conditions=[{"type": "Failed", "status": "True", "reason": "InvalidData", "message": "row 7"}],
    )
    with StatusBar(stream) as bar:
        for body in (sftjob(phase="Running"), failed):
            bar.update(SFTJob.from_dict(body))
    assert stream.getvalue() == "smol: Running\nsmol: Failed (InvalidData: row 7)\n"


def test_the_wait_bar_prints_each_phase_with_its_reason_and_ends_with_the_last_step() -> None:
    stream = io.StringIO()
    succeeded = sftjob(
        phase="Succeeded",
        progress={"step": 1000, "totalSteps": 1000, "loss": 0.9},
        conditions=[{"type": "Succeeded", "status": "True", "reason": "Completed", "message": "done " * 30}],
    )
    with StatusBar(stream) as bar:
        for body in (sftjob(phase="Pending"), sftjob(phase="Pending"), RUNNING.raw, succeeded):
            bar.update(SFTJob.from_dict(body))
    lines = stream.getvalue().splitlines()
    assert lines[:3] == [
        "smol: Pending",
        "smol: Running (Training: training)",
        f"smol: Succeeded (Completed: {'done ' * 30})",
    ]
    assert lines[-1].startswith("smol ━") and lines[-1].endswith(" 1000/1000 loss 0.9 ETA -"), lines
