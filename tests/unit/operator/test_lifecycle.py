"""The SFTJob state machine, step by step: what it writes, does and records for each world."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from kubesft_api import exit_codes
from kubesft_operator import names
from kubesft_operator.decisions import (
    Decision,
    DeleteJob,
    DeleteSFTJob,
    EnsureChildren,
    Refusal,
    SetJobDeadline,
    SFTJobView,
    SuspendJob,
    World,
)
from kubesft_operator.lifecycle import ANNOTATION_REFUSED_GENERATION, decide
from kubesft_operator.objects import Job, Pod, SFTJob
from kubesft_operator.records import ANNOTATION_APPLIED_SPEC_SIGNATURE, Signer, applied_record_verifies
from tests.support.operator_objects import OWNER, T0, job, job_condition, pod, sftjob, spec_dict

NOW = datetime(2030, 1, 1, 0, 5, tzinfo=UTC)


def run(
    body: SFTJob,
    jobs: list[Job] | None = None,
    pods: list[Pod] | None = None,
    now: datetime = NOW,
    job_suspend: bool = False,
    signer: Signer | None = None,
    refusal: Refusal | None = None,
) -> Decision:
    world = World(SFTJobView.from_body(body), jobs or [], pods or [], now, job_suspend, signer, refusal)
    return decide(world)


def applied(body: SFTJob, decision: Decision) -> SFTJob:
    """The SFTJob after the operator wrote the decision's status and annotations."""
    out: SFTJob = json.loads(json.dumps(body))
    out["status"] = decision.status.model_dump(mode="json", by_alias=True, exclude_none=True)
    for key, value in decision.annotations.items():
        if value is None:
            out["metadata"]["annotations"].pop(key, None)
        else:
            out["metadata"]["annotations"][key] = value
    return out


def condition(decision: Decision, kind: str) -> Any:
    return next(c for c in decision.status.conditions if c.type == kind)


def started(spec: dict[str, Any] | None = None, **run_policy: Any) -> SFTJob:
    """An SFTJob whose attempt 0 was created and is running."""
    body = sftjob(spec or spec_dict(**run_policy))
    body = applied(body, run(body))
    return applied(body, run(body, [job(0)], [pod(0)]))


def test_new_job_creates_children_of_attempt_zero() -> None:
    body = sftjob()
    decision = run(body)
    (action,) = decision.actions
    assert isinstance(action, EnsureChildren)
    assert (action.attempt.index, action.attempt.restarts, action.attempt.suspended) == (0, 0, False)
    assert decision.status.phase == "Pending"
    assert decision.status.job_name == "chat-0"
    assert decision.status.observed_generation == 1
    assert condition(decision, "Created").status == "True"
    assert json.loads(decision.annotations[names.ANNOTATION_APPLIED_SPEC] or "") == body["spec"]
    assert [(e.type, e.reason) for e in decision.events] == [("Normal", "JobCreated")]


def test_invalid_spec_fails_without_children() -> None:
    raw = spec_dict()
    raw["training"]["learningRate"] = 5
    decision = run(sftjob(raw))
    assert decision.actions == []
    assert decision.status.phase == "Failed"
    failed = condition(decision, "Failed")
    assert failed.reason == "InvalidSpec"
    assert "spec.training.learningRate" in failed.message
    assert [(e.type, e.reason) for e in decision.events] == [("Warning", "InvalidSpec")]
    assert all(c.type != "Created" for c in decision.status.conditions)


def test_a_misspelt_field_the_api_server_kept_fails_the_job_by_name() -> None:
    # The CRD keeps undeclared spec fields, so without the webhook the operator sees the typo.
    raw = spec_dict()
    raw["training"]["learningRat"] = 0.001
    decision = run(sftjob(raw))
    assert decision.actions == []
    failed = condition(decision, "Failed")
    assert (failed.reason, failed.message) == ("InvalidSpec", "spec.training.learningRat: unknown field")


def test_invalid_name_is_reported_on_metadata_name() -> None:
    decision = run(sftjob(name="Chat.Model"))
    assert decision.status.phase == "Failed"
    assert condition(decision, "Failed").message.startswith("metadata.name: 'Chat.Model'")


def test_edited_invalid_spec_starts_over() -> None:
    raw = spec_dict()
    raw["training"]["learningRate"] = 5
    body = applied(sftjob(raw), run(sftjob(raw)))
    body["spec"] = spec_dict()
    body["metadata"]["generation"] = 2
    decision = run(body)
    assert isinstance(decision.actions[0], EnsureChildren)
    assert decision.status.phase == "Pending"
    assert all(c.type != "Failed" for c in decision.status.conditions)


def test_running_pod_moves_to_running_once() -> None:
    body = sftjob()
    body = applied(body, run(body))
    decision = run(body, [job(0)], [pod(0)])
    assert decision.status.phase == "Running"
    assert decision.status.start_time == T0
    assert decision.actions == []
    assert [(e.type, e.reason) for e in decision.events] == [("Normal", "Training")]
    again = run(applied(body, decision), [job(0)], [pod(0)])
    assert again.actions == [] and again.events == []
    assert again.status == decision.status


def test_a_killed_trainer_starts_the_next_attempt_and_counts_a_restart() -> None:
    body = started()
    decision = run(body, [job(0)], [pod(0, "Failed", exit_code=137)])
    create, delete = decision.actions
    assert isinstance(create, EnsureChildren) and (create.attempt.index, create.attempt.restarts) == (1, 1)
    assert delete == DeleteJob("chat-0")
    assert (decision.status.attempt, decision.status.restarts, decision.status.job_name) == (1, 1, "chat-1")
    assert decision.status.phase == "Pending"
    running = condition(decision, "Running")
    assert running.reason == "Killed" and "restart 1 of 2" in running.message
    assert [(e.type, e.reason) for e in decision.events] == [("Warning", "Killed"), ("Normal", "JobCreated")]


def test_a_preempted_pod_starts_the_next_attempt_without_using_up_a_retry() -> None:
    # backoffLimit 0: a crash would fail the job, a preemption does not.
    body = started(backoffLimit=0)
    body["status"]["preemptions"] = 1
    decision = run(body, [job(0)], [pod(0, "Failed", exit_code=137, pod_reason="Preempted")])
    create, delete = decision.actions
    assert isinstance(create, EnsureChildren) and (create.attempt.index, create.attempt.restarts) == (1, 0)
    assert delete == DeleteJob("chat-0")
    status = decision.status
    assert (status.attempt, status.restarts, status.preemptions, status.phase) == (1, 0, 2, "Pending")
    running = condition(decision, "Running")
    assert running.reason == "Preempted"
    assert "does not count against spec.runPolicy.backoffLimit: 0 of 0 used" in running.message


def test_an_evicted_pod_with_a_disruption_target_condition_is_a_preemption() -> None:
    evicted = pod(0, "Failed", exit_code=137)
    evicted["status"]["conditions"].append(
        {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}
    )
    decision = run(started(backoffLimit=0), [job(0)], [evicted])
    assert (decision.status.attempt, decision.status.restarts, decision.status.preemptions) == (1, 0, 1)
    assert condition(decision, "Running").reason == "Preempted"


def test_a_trainer_stopped_by_sigterm_outside_a_suspension_is_a_disruption_too() -> None:
    stopped = pod(0, "Failed", exit_code=exit_codes.PREEMPTED)
    decision = run(started(backoffLimit=0), [job(0)], [stopped])
    assert (decision.status.attempt, decision.status.restarts, decision.status.preemptions) == (1, 0, 1)


def test_a_crash_at_backoff_limit_0_fails_where_a_preemption_would_retry() -> None:
    decision = run(started(backoffLimit=0), [job(0)], [pod(0, "Failed", exit_code=137)])
    assert not any(isinstance(a, EnsureChildren) for a in decision.actions)
    assert condition(decision, "Failed").reason == "BackoffLimitExceeded"
    assert decision.status.preemptions == 0


def test_new_attempt_is_adopted_not_duplicated_after_an_operator_restart() -> None:
    body = started()
    # The operator created chat-1 and died before it wrote the status.
    decision = run(body, [job(0), job(1, restarts=1)], [pod(0, "Failed", exit_code=137), pod(1)])
    assert not any(isinstance(a, EnsureChildren) for a in decision.actions)
    assert DeleteJob("chat-0") in decision.actions
    assert (decision.status.attempt, decision.status.restarts, decision.status.phase) == (1, 1, "Running")


def test_backoff_limit_ends_in_failed() -> None:
    body = started()
    body["status"].update({"attempt": 2, "restarts": 2, "jobName": "chat-2"})
    decision = run(
        body,
        [job(2, restarts=2)],
        [pod(2, "Failed", exit_code=exit_codes.RUNTIME_FAILURE, message="kubesft: error: boom")],
    )
    assert not any(isinstance(a, EnsureChildren) for a in decision.actions)
    failed = condition(decision, "Failed")
    assert failed.reason == "BackoffLimitExceeded"
    assert "boom" in failed.message and "backoffLimit: 2" in failed.message
    assert decision.status.completion_time is not None


def test_permanent_failure_is_not_retried() -> None:
    decision = run(
        started(),
        [job(0)],
        [pod(0, "Failed", exit_code=exit_codes.INVALID_DATA, message="kubesft: error: row 3: bad role")],
    )
    assert not any(isinstance(a, EnsureChildren) for a in decision.actions)
    assert decision.status.phase == "Failed"
    assert (condition(decision, "Failed").reason, condition(decision, "Failed").message) == (
        "InvalidData",
        "row 3: bad role",
    )
    assert decision.status.restarts == 0


def test_missing_secret_waits_with_a_reason_instead_of_retrying() -> None:
    body = applied(sftjob(), run(sftjob()))
    waiting = pod(0, "Pending", waiting=("CreateContainerConfigError", 'secret "s3-credentials" not found'))
    decision = run(body, [job(0)], [waiting])
    assert decision.actions == []
    assert decision.status.phase == "Pending"
    assert condition(decision, "Running").reason == "CreateContainerConfigError"
    assert [(e.type, e.reason) for e in decision.events] == [("Warning", "CreateContainerConfigError")]


def test_success_records_output_and_final_progress() -> None:
    body = started()
    body["status"]["progress"] = {"step": 36, "totalSteps": 40, "loss": 1.5, "etaSeconds": 2.0}
    done = job(0, conditions=[job_condition("Complete", at="2030-01-01T00:04:00Z")])
    decision = run(body, [done], [pod(0, "Succeeded", exit_code=0)])
    status = decision.status
    assert status.phase == "Succeeded"
    assert status.completion_time == "2030-01-01T00:04:00Z"
    assert status.output_uri == "s3://out/chat"
    assert status.progress is not None and (status.progress.step, status.progress.percent) == (40, 100.0)
    assert status.progress_text == "40/40 (100%)"
    assert condition(decision, "Succeeded").reason == "Completed"
    assert [(e.type, e.reason) for e in decision.events] == [("Normal", "Completed")]
    assert decision.actions == []


def test_a_run_that_forgot_succeeds_with_a_retention_regressed_warning_and_event() -> None:
    body = started()
    done = job(0, conditions=[job_condition("Complete", at="2030-01-01T00:04:00Z")])
    message = "evaluation loss rose over its baseline by more than evaluation.maxRetentionLossIncrease (0.1): general 2.0 -> 2.6"
    trainer = pod(
        0,
        "Succeeded",
        exit_code=0,
        reason="Completed",
        message=f"kubesft: warning: RetentionRegressed: {message}\n",
    )
    decision = run(body, [done], [trainer])
    assert decision.status.phase == "Succeeded"
    warning = condition(decision, "RetentionRegressed")
    assert (warning.status, warning.reason, warning.message) == ("True", "RetentionRegressed", message)
    assert ("Warning", "RetentionRegressed", message) in [
        (e.type, e.reason, e.message) for e in decision.events
    ]
    finished = applied(body, decision)
    assert run(finished, [done], [trainer]).events == [], "the warning is recorded once"
    clean = run(started(), [done], [pod(0, "Succeeded", exit_code=0)])
    assert all(c.type != "RetentionRegressed" for c in clean.status.conditions)


def test_ttl_deletes_the_sftjob_after_it_finishes() -> None:
    body = started(ttlSecondsAfterFinished=60)
    done = job(0, conditions=[job_condition("Complete", at="2030-01-01T00:04:30Z")])
    decision = run(body, [done], [pod(0, "Succeeded", exit_code=0)])
    assert decision.actions == []
    assert decision.requeue_after == 30
    finished = applied(body, decision)
    assert run(finished, [done], now=NOW + timedelta(seconds=29)).actions == []
    later = run(finished, [done], now=NOW + timedelta(seconds=30))
    assert later.actions == [DeleteSFTJob()]
    immediate = started(ttlSecondsAfterFinished=0)
    assert DeleteSFTJob() in run(immediate, [done], [pod(0, "Succeeded", exit_code=0)]).actions


def test_suspend_by_deleting_the_job_then_resume_with_a_new_attempt() -> None:
    body = started()
    body["spec"]["runPolicy"]["suspend"] = True
    body["metadata"]["generation"] = 2
    stopping = run(body, [job(0)], [pod(0)])
    assert stopping.actions == [DeleteJob("chat-0")]
    assert condition(stopping, "Suspended").reason == "Suspending"
    assert [(e.type, e.reason) for e in stopping.events] == [("Normal", "Suspending")]
    body = applied(body, stopping)
    saving = run(body, [], [pod(0, deleting=True)])
    assert saving.actions == [] and saving.events == []
    body = applied(body, saving)
    body["status"]["latestCheckpoint"] = "s3://ckpt/chat/checkpoint-20"
    suspended = run(body, [], [])
    assert suspended.status.phase == "Suspended"
    assert "checkpoint-20" in condition(suspended, "Suspended").message
    assert [(e.type, e.reason) for e in suspended.events] == [("Normal", "Suspended")]
    body = applied(body, suspended)
    body["spec"]["runPolicy"]["suspend"] = False
    body["metadata"]["generation"] = 3
    resumed = run(body, [], [])
    (create,) = resumed.actions
    assert isinstance(create, EnsureChildren) and (create.attempt.index, create.attempt.restarts) == (1, 0)
    assert condition(resumed, "Suspended").status == "False"
    assert resumed.status.restarts == 0
    assert [e.reason for e in resumed.events] == ["Resumed", "JobCreated"]


def test_resume_waits_for_the_previous_pods_to_stop() -> None:
    body = started()
    body["spec"]["runPolicy"]["suspend"] = True
    body = applied(body, run(body, [job(0)], [pod(0)]))
    body["spec"]["runPolicy"]["suspend"] = False
    assert run(body, [], [pod(0, deleting=True)]).actions == []


def test_suspend_with_the_job_suspend_field_where_the_server_has_it() -> None:
    body = started()
    body["spec"]["runPolicy"]["suspend"] = True
    first = run(body, [job(0)], [pod(0)], job_suspend=True)
    assert first.actions == [SuspendJob("chat-0", True)]
    body = applied(body, first)
    suspended = run(body, [job(0, suspend=True)], [], job_suspend=True)
    assert suspended.status.phase == "Suspended" and suspended.actions == []
    body = applied(body, suspended)
    body["spec"]["runPolicy"]["suspend"] = False
    resumed = run(body, [job(0, suspend=True)], [], job_suspend=True)
    assert resumed.actions == [SuspendJob("chat-0", False)]
    assert resumed.status.phase == "Pending" and resumed.status.restarts == 0
    # Pods the suspension stopped may be counted as failed by the Job controller: not a restart.
    body["spec"]["runPolicy"]["suspend"] = True
    body = applied(body, first)
    stopped = run(
        body, [job(0, suspend=True)], [pod(0, "Failed", exit_code=exit_codes.PREEMPTED)], job_suspend=True
    )
    assert stopped.status.phase == "Suspended" and stopped.status.restarts == 0


def test_kueue_jobs_start_suspended_and_wait_for_admission() -> None:
    body = sftjob(spec_dict(queueName="gpu"))
    create = run(body).actions[0]
    assert isinstance(create, EnsureChildren) and create.attempt.suspended
    body = applied(body, run(body))
    queued = run(body, [job(0, spec=spec_dict(queueName="gpu"), suspend=True)], [], job_suspend=True)
    assert queued.actions == []
    assert (queued.status.phase, condition(queued, "Running").reason) == ("Pending", "Queued")
    # A user suspend of a queued job deletes the Job: Kueue owns the Job's suspend field.
    body["spec"]["runPolicy"]["suspend"] = True
    assert run(body, [job(0, spec=spec_dict(queueName="gpu"))], [pod(0)], job_suspend=True).actions == [
        DeleteJob("chat-0")
    ]


def test_suspended_before_start_creates_nothing_until_resumed() -> None:
    body = sftjob(spec_dict(suspend=True))
    decision = run(body)
    assert decision.actions == [] and decision.status.phase == "Suspended"
    body = applied(body, decision)
    body["spec"]["runPolicy"]["suspend"] = False
    create = run(body).actions[0]
    assert isinstance(create, EnsureChildren) and create.attempt.index == 0


def test_spec_change_while_running_is_refused_and_the_old_spec_kept() -> None:
    body = started()
    body["spec"]["training"]["maxSteps"] = 80
    body["spec"]["runPolicy"]["activeDeadlineSeconds"] = 7200
    body["metadata"]["generation"] = 2
    decision = run(body, [job(0)], [pod(0)])
    assert [(e.type, e.reason) for e in decision.events] == [("Warning", "SpecChangeRefused")]
    assert "spec.training.maxSteps" in decision.events[0].message
    assert "activeDeadlineSeconds" not in decision.events[0].message.split(" cannot")[0]
    assert decision.annotations[ANNOTATION_REFUSED_GENERATION] == "2"
    assert decision.status.observed_generation == 1
    assert names.ANNOTATION_APPLIED_SPEC not in decision.annotations
    again = run(applied(body, decision), [job(0)], [pod(0)])
    assert again.events == []
    # A retry after that still trains with the spec the job started with.
    retry = run(applied(body, decision), [job(0)], [pod(0, "Failed", exit_code=137)])
    create = retry.actions[0]
    assert isinstance(create, EnsureChildren)
    assert create.spec.training.max_steps == 40
    assert create.spec.run_policy.active_deadline_seconds == 7200


def test_deadline_fails_the_job_and_follows_changes() -> None:
    body = started(activeDeadlineSeconds=600)
    overdue = run(body, [job(0)], [pod(0)], now=NOW + timedelta(seconds=600))
    assert overdue.status.phase == "Failed"
    assert condition(overdue, "Failed").reason == "DeadlineExceeded"
    assert DeleteJob("chat-0") in overdue.actions
    body["spec"]["runPolicy"]["activeDeadlineSeconds"] = 3600
    body["metadata"]["generation"] = 2
    longer = run(body, [job(0)], [pod(0)])
    assert longer.actions == [SetJobDeadline("chat-0", 3600)]
    assert longer.status.observed_generation == 2


def test_job_controller_deadline_is_not_retried() -> None:
    body = started(activeDeadlineSeconds=600)
    failed = job(0, conditions=[job_condition("Failed", "DeadlineExceeded")])
    decision = run(body, [failed], [pod(0, "Failed", exit_code=exit_codes.PREEMPTED)])
    assert condition(decision, "Failed").reason == "DeadlineExceeded"
    assert not any(isinstance(a, EnsureChildren) for a in decision.actions)


def test_jobs_of_older_attempts_are_cleaned_up() -> None:
    body = started()
    body["status"].update({"attempt": 1, "restarts": 1, "jobName": "chat-1"})
    decision = run(body, [job(0), job(1, restarts=1)], [pod(1)])
    assert decision.actions == [DeleteJob("chat-0")]


def test_finished_or_deleted_jobs_are_left_alone() -> None:
    body = started()
    body["metadata"]["deletionTimestamp"] = T0
    assert run(body, [job(0)], [pod(0)]).actions == []
    assert OWNER.name == "chat"


# --- the signed applied-spec record, and refused starts -----------------------------------------

SIGNER = Signer(b"l" * 32)


def _signed_and_started() -> SFTJob:
    body = sftjob()
    body = applied(body, run(body, signer=SIGNER))
    return applied(body, run(body, [job(0)], [pod(0)], signer=SIGNER))


def test_a_start_signs_the_spec_it_applies() -> None:
    body = _signed_and_started()
    assert applied_record_verifies(SIGNER, OWNER.uid, body["metadata"]["annotations"])
    again = run(body, [job(0)], [pod(0)], signer=SIGNER)
    assert again.status.phase == "Running" and again.actions == []


def test_an_altered_applied_spec_fails_the_job_and_stops_its_pods() -> None:
    body = _signed_and_started()
    record = json.loads(body["metadata"]["annotations"][names.ANNOTATION_APPLIED_SPEC])
    record["training"]["maxSteps"] = 99999
    edited = json.loads(json.dumps(body))
    edited["metadata"]["annotations"][names.ANNOTATION_APPLIED_SPEC] = json.dumps(record)
    removed = json.loads(json.dumps(body))
    del removed["metadata"]["annotations"][names.ANNOTATION_APPLIED_SPEC]
    del removed["metadata"]["annotations"][ANNOTATION_APPLIED_SPEC_SIGNATURE]
    for altered in (edited, removed):
        decision = run(altered, [job(0)], [pod(0)], signer=SIGNER)
        assert decision.status.phase == "Failed"
        failed = condition(decision, "Failed")
        assert failed.reason == "SpecRecordAltered"
        assert "kubesft.io/applied-spec was changed or removed outside the operator" in failed.message
        assert decision.actions == [DeleteJob("chat-0")]
    # Unsigned records are all there is without a key.
    assert run(edited, [job(0)], [pod(0)]).status.phase == "Running"


def test_a_refused_start_fails_the_job_instead() -> None:
    refusal = Refusal("Unauthorized", "spec.checkpoints.credentialsSecret: user 'alice' may not get secrets")
    decision = run(sftjob(), refusal=refusal)
    assert decision.status.phase == "Failed"
    failed = condition(decision, "Failed")
    assert (failed.reason, failed.message) == (refusal.reason, refusal.message)
    assert not any(isinstance(a, EnsureChildren) for a in decision.actions)


def test_a_refused_restart_deletes_the_failed_attempt_and_starts_none() -> None:
    body = started()
    decision = run(
        body, [job(0)], [pod(0, "Failed", exit_code=137)], refusal=Refusal("PolicyViolation", "no")
    )
    assert decision.actions == [DeleteJob("chat-0")]
    assert condition(decision, "Failed").reason == "PolicyViolation"
    assert decision.status.phase == "Failed"


def test_an_edit_after_a_refused_start_starts_over() -> None:
    body = applied(sftjob(), run(sftjob(), refusal=Refusal("NotAdmitted", "no record")))
    body["metadata"]["generation"] = 2
    decision = run(body)
    assert isinstance(decision.actions[0], EnsureChildren)
    assert decision.status.phase == "Pending"
