"""Reading an attempt's state from its Job and Pods: running, waiting, finished or failed, and why."""

from __future__ import annotations

from kubesft_api import exit_codes
from kubesft_operator.attempts import observe_attempt, trainer_reason
from tests.support.operator_objects import T0, job, job_condition, pod


def test_running_pod_gives_rank0_address() -> None:
    state = observe_attempt(job(0), [pod(0, ip="10.1.0.9")], nodes=1)
    assert (state.phase, state.rank0_pod_ip, state.started_at, state.live_pods) == (
        "Running",
        "10.1.0.9",
        T0,
        1,
    )


def test_rank0_is_completion_index_zero() -> None:
    pods = [pod(0, index=1, ip="10.1.0.11"), pod(0, index=0, ip="10.1.0.10")]
    assert observe_attempt(job(0), pods, nodes=2).rank0_pod_ip == "10.1.0.10"


def test_succeeded_from_job_condition_or_pods() -> None:
    done = job(0, conditions=[job_condition("Complete", at="2030-01-01T00:10:00Z")])
    state = observe_attempt(done, [pod(0, "Succeeded", exit_code=0)], nodes=1)
    assert (state.phase, state.finished_at) == ("Succeeded", "2030-01-01T00:10:00Z")
    assert observe_attempt(job(0), [pod(0, "Succeeded", exit_code=0)], nodes=1).phase == "Succeeded"


def test_permanent_trainer_failure_carries_the_trainer_reason() -> None:
    message = "Traceback ...\nkubesft: error: dataset row 17: messages[1].role 'robot' is not one of system, user, assistant"
    state = observe_attempt(
        job(0), [pod(0, "Failed", exit_code=exit_codes.INVALID_DATA, message=message)], nodes=1
    )
    assert state.phase == "Failed" and state.failure is not None
    assert state.failure.reason == "InvalidData"
    assert not state.failure.retryable
    assert (
        state.failure.message
        == "dataset row 17: messages[1].role 'robot' is not one of system, user, assistant"
    )
    config = observe_attempt(job(0), [pod(0, "Failed", exit_code=exit_codes.INVALID_CONFIG, message="x")], 1)
    assert config.failure is not None and (config.failure.reason, config.failure.retryable) == (
        "InvalidConfig",
        False,
    )


def test_oom_is_permanent_with_advice() -> None:
    state = observe_attempt(job(0), [pod(0, "Failed", exit_code=137, reason="OOMKilled")], nodes=1)
    assert state.failure is not None
    assert (state.failure.reason, state.failure.retryable) == ("OOMKilled", False)
    assert "spec.resources.memory" in state.failure.message and "perDeviceBatchSize" in state.failure.message


def test_retryable_failures() -> None:
    cases = {
        exit_codes.PREEMPTED: "Preempted",
        137: "Killed",
        exit_codes.RUNTIME_FAILURE: "TrainerError",
    }
    for code, reason in cases.items():
        state = observe_attempt(
            job(0), [pod(0, "Failed", exit_code=code, message="kubesft: error: NCCL timeout")], 1
        )
        assert state.failure is not None
        assert (state.failure.reason, state.failure.retryable) == (reason, True), code
    crashed = observe_attempt(
        job(0), [pod(0, "Failed", exit_code=1, message="kubesft: error: NCCL timeout")], 1
    )
    assert crashed.failure is not None and "NCCL timeout" in crashed.failure.message
    evicted = observe_attempt(job(0), [pod(0, "Failed", pod_reason="Evicted")], nodes=1)
    assert evicted.failure is not None and evicted.failure.reason == "Preempted"


def test_permanent_failure_of_one_rank_outweighs_the_others_being_killed() -> None:
    pods = [
        pod(0, "Failed", index=0, exit_code=143),
        pod(0, "Failed", index=1, exit_code=exit_codes.INVALID_DATA, message="kubesft: error: bad row 3"),
    ]
    state = observe_attempt(job(0), pods, nodes=2)
    assert state.failure is not None and state.failure.reason == "InvalidData"


def test_deadline_exceeded_from_job_condition() -> None:
    failed = job(
        0, conditions=[job_condition("Failed", "DeadlineExceeded", "Job was active longer than specified")]
    )
    state = observe_attempt(failed, [pod(0, "Failed", exit_code=exit_codes.PREEMPTED)], nodes=1)
    assert state.failure is not None and (state.failure.reason, state.failure.retryable) == (
        "DeadlineExceeded",
        False,
    )


def test_waiting_reasons_are_actionable() -> None:
    missing = observe_attempt(
        job(0),
        [pod(0, "Pending", waiting=("CreateContainerConfigError", 'secret "s3-credentials" not found'))],
        nodes=1,
    )
    assert missing.phase == "Waiting" and missing.reason == "CreateContainerConfigError"
    assert 'secret "s3-credentials" not found' in missing.message
    assert "spec.checkpoints.credentialsSecret" in missing.message and "team-a" in missing.message
    pull = observe_attempt(job(0), [pod(0, "Pending", waiting=("ImagePullBackOff", "Back-off pulling"))], 1)
    assert pull.reason == "ImagePullBackOff" and "spec.resources.image" in pull.message
    unschedulable = pod(0, "Pending")
    unschedulable["status"]["containerStatuses"] = []
    unschedulable["status"]["conditions"] = [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes: gpu"}
    ]
    state = observe_attempt(job(0), [unschedulable], nodes=1)
    assert state.reason == "Unschedulable" and "0/3 nodes: gpu" in state.message
    assert observe_attempt(job(0), [], nodes=1).reason == "PodStarting"


def test_stopping_missing_and_queued() -> None:
    assert observe_attempt(None, [pod(0, deleting=True)], nodes=1).phase == "Stopping"
    assert observe_attempt(None, [], nodes=1).phase == "Missing"
    assert observe_attempt(job(0, suspend=True), [], nodes=1).phase == "Queued"
    assert observe_attempt(job(0, suspend=True), [pod(0)], nodes=1).phase == "Stopping"
    # A trainer stopped by the Job's suspension may end Failed: that is no failed attempt.
    stopped = pod(0, "Failed", exit_code=exit_codes.PREEMPTED, deleting=True)
    assert observe_attempt(job(0, suspend=True), [stopped], nodes=1).phase == "Queued"
    assert observe_attempt(job(0), [stopped], nodes=1).phase == "Failed"


def test_trainer_reason_prefers_the_prefixed_line() -> None:
    assert trainer_reason("a\nkubesft: error: the reason\nlater noise\n") == "the reason"
    assert trainer_reason("only a log line\n") == "only a log line"
    assert trainer_reason(None) == ""
