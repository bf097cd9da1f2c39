"""The validation stage in the state machine: a CPU pod checks the job before its first trainer Job,
and a job that fails it never gets one."""

from __future__ import annotations

import copy
from typing import Any

from kubesft_api import exit_codes
from kubesft_api.validation_stage import REPORT_PREFIX, ValidationReport
from kubesft_operator import names, watched
from kubesft_operator.decisions import DeleteJob, EnsureChildren, Refusal, RunValidation
from kubesft_operator.objects import Job, Pod, SFTJob
from kubesft_operator.render import render_validation_job
from kubesft_operator.validation_gate import settings_digest
from tests.support.operator_objects import (
    DEFAULTS,
    OWNER,
    T0,
    job_condition,
    parsed,
    pod,
    sftjob,
    spec_dict,
)
from tests.unit.operator.test_lifecycle import applied, condition, run

REPORT = ValidationReport(
    training_rows=64,
    row_format="messages",
    examples=64,
    tokens_p50=40,
    tokens_p95=60,
    tokens_max=64,
    tokens_per_epoch=2600,
    loss_tokens_per_epoch=900,
    steps_per_epoch=16,
    total_steps=16,
)


def validated_spec(**validation: Any) -> dict[str, Any]:
    raw = spec_dict()
    raw["validation"] = {"enabled": True, **validation}
    return raw


def validation_job(spec: dict[str, Any], conditions: list[dict[str, Any]] | None = None) -> Job:
    digest = settings_digest(parsed(spec))
    body = render_validation_job(OWNER, parsed(spec), digest, DEFAULTS)
    body["metadata"]["uid"] = "uid-validation"
    body["status"] = {"conditions": conditions or [], "startTime": T0}
    return watched.keep_job(body)


def validation_pod(
    spec: dict[str, Any], phase: str, exit_code: int | None = None, message: str | None = None
) -> Pod:
    """The validation Job's pod, as the Job controller and kubelet leave it."""
    body = copy.deepcopy(pod(0, phase, exit_code=exit_code, message=message))
    name = names.validation_job_name(OWNER.name, settings_digest(parsed(spec)))
    body["metadata"]["name"] = f"{name}-xyz12"
    body["metadata"]["labels"] = {**names.child_labels(OWNER.name), names.LABEL_STAGE: names.VALIDATION_STAGE}
    body["metadata"]["ownerReferences"] = [{"kind": "Job", "uid": "uid-validation", "controller": True}]
    return body


def report_message(report: ValidationReport = REPORT) -> str:
    return "some log line\n" + REPORT_PREFIX + report.model_dump_json(by_alias=True) + "\n"


def validating(spec: dict[str, Any]) -> SFTJob:
    """An SFTJob whose validation Job was created."""
    body = sftjob(spec)
    return applied(body, run(body))


def test_new_job_runs_validation_on_a_cpu_pod_before_any_trainer_job() -> None:
    decision = run(sftjob(validated_spec()))
    (action,) = decision.actions
    assert isinstance(action, RunValidation)
    assert action.digest == settings_digest(parsed(validated_spec()))
    assert decision.status.phase == "Validating"
    assert decision.status.stage == "Validating"
    assert decision.status.job_name is None
    assert condition(decision, "Validated").status == "Unknown"
    assert [(e.type, e.reason) for e in decision.events] == [("Normal", "Validating")]


def test_validation_job_is_the_trainer_pod_with_validate_no_gpu_and_small_resources() -> None:
    spec = validated_spec()
    body = render_validation_job(OWNER, parsed(spec), "0123456789abcdef", DEFAULTS)
    container = body["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "kubesft_trainer", "--validate"]
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }
    assert body["metadata"]["name"] == "chat-validate-012345"
    assert body["spec"]["template"]["metadata"]["labels"][names.LABEL_STAGE] == "validation"
    assert names.LABEL_ATTEMPT not in body["spec"]["template"]["metadata"]["labels"]
    env = {item["name"] for item in container["env"]}
    assert {"KUBESFT_CONFIG", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= env


def test_validation_gets_at_most_an_hour_and_never_more_than_the_jobs_deadline() -> None:
    spec = validated_spec()
    assert (
        render_validation_job(OWNER, parsed(spec), "0" * 16, DEFAULTS)["spec"]["activeDeadlineSeconds"]
        == 3600
    )
    spec["runPolicy"]["activeDeadlineSeconds"] = 900
    assert (
        render_validation_job(OWNER, parsed(spec), "0" * 16, DEFAULTS)["spec"]["activeDeadlineSeconds"] == 900
    )


def test_running_validation_keeps_the_job_validating_and_creates_nothing() -> None:
    spec = validated_spec()
    body = validating(spec)
    decision = run(body, [validation_job(spec)], [validation_pod(spec, "Running")])
    assert decision.actions == []
    assert decision.status.phase == "Validating"
    assert decision.events == []


def test_passed_validation_records_the_figures_and_creates_attempt_zero() -> None:
    spec = validated_spec()
    body = validating(spec)
    done = validation_pod(spec, "Succeeded", exit_code=0, message=report_message())
    complete = validation_job(spec, [job_condition("Complete")])
    decision = run(body, [complete], [done])
    (action,) = decision.actions
    assert isinstance(action, EnsureChildren) and action.attempt.index == 0
    assert decision.status.validation is not None
    assert decision.status.validation.steps_per_epoch == 16
    assert decision.status.validation.spec_digest == settings_digest(parsed(spec))
    validated = condition(decision, "Validated")
    assert (validated.status, validated.reason) == ("True", "Validated")
    assert "64 training rows" in validated.message and "16 steps per epoch" in validated.message
    assert decision.status.phase == "Pending"
    assert decision.status.stage is None, "the trainer reports its own stage once it runs"


def test_a_warning_of_the_report_shows_in_the_validated_condition() -> None:
    spec = validated_spec()
    report = REPORT.model_copy(
        update={"warnings": ["12% of the examples are longer than training.maxLength"]}
    )
    done = validation_pod(spec, "Succeeded", exit_code=0, message=report_message(report))
    decision = run(validating(spec), [validation_job(spec, [job_condition("Complete")])], [done])
    assert "warning: 12% of the examples are longer" in condition(decision, "Validated").message


def test_failed_validation_fails_the_job_without_a_trainer_job() -> None:
    spec = validated_spec()
    reason = (
        "kubesft: error: dataset train split: 1 of 64 rows are invalid: row 7: messages[1].role is 'robot'"
    )
    failed = validation_pod(spec, "Failed", exit_code=exit_codes.INVALID_DATA, message=reason)
    decision = run(validating(spec), [validation_job(spec)], [failed])
    assert not [a for a in decision.actions if isinstance(a, EnsureChildren)]
    assert decision.status.phase == "Failed"
    failure = condition(decision, "Failed")
    assert failure.reason == "InvalidData"
    assert "no training Job was created" in failure.message and "row 7" in failure.message
    assert condition(decision, "Validated").status == "False"
    assert decision.status.stage is None
    # It stays failed: a later look creates nothing either.
    later = run(applied(validating(spec), decision), [validation_job(spec)], [failed])
    assert later.actions == [] and later.status.phase == "Failed"


def test_unwritable_storage_fails_with_storage_unavailable() -> None:
    spec = validated_spec()
    message = "kubesft: error: output.uri: cannot write to s3://out/chat: bucket 'out' does not exist"
    failed = validation_pod(spec, "Failed", exit_code=exit_codes.STORAGE_UNAVAILABLE, message=message)
    decision = run(validating(spec), [validation_job(spec)], [failed])
    assert condition(decision, "Failed").reason == "StorageUnavailable"
    assert "s3://out/chat" in condition(decision, "Failed").message


def test_preempted_validation_pod_runs_the_check_again() -> None:
    spec = validated_spec()
    evicted = validation_pod(spec, "Failed")
    evicted["status"]["reason"] = "Evicted"
    decision = run(validating(spec), [validation_job(spec)], [evicted])
    name = names.validation_job_name(OWNER.name, settings_digest(parsed(spec)))
    assert decision.actions == [DeleteJob(name)]
    assert decision.status.phase == "Validating"


def test_validation_is_not_repeated_when_the_job_resumes_with_the_same_spec() -> None:
    spec = validated_spec()
    done = validation_pod(spec, "Succeeded", exit_code=0, message=report_message())
    complete = validation_job(spec, [job_condition("Complete")])
    body = applied(validating(spec), run(validating(spec), [complete], [done]))
    assert body["status"]["jobName"] == "chat-0"
    # Attempt 0 and the validation Job are gone (a suspension, a deletion by hand): the next
    # attempt starts from the recorded validation, without a second check.
    decision = run(body, [], [])
    (action,) = decision.actions
    assert isinstance(action, EnsureChildren) and action.attempt.index == 1
    assert condition(decision, "Validated").status == "True"


def test_disabled_validation_creates_attempt_zero_at_once() -> None:
    decision = run(sftjob(validated_spec(enabled=False)))
    (action,) = decision.actions
    assert isinstance(action, EnsureChildren)
    assert decision.status.validation is None


def test_a_refused_start_fails_before_validation_runs() -> None:
    refusal = Refusal("PolicyViolation", "spec.resources.image: not allowed")
    decision = run(sftjob(validated_spec()), refusal=refusal)
    assert not [a for a in decision.actions if isinstance(a, RunValidation)]
    assert condition(decision, "Failed").reason == "PolicyViolation"


def test_editing_a_job_that_failed_validation_validates_the_new_settings() -> None:
    spec = validated_spec()
    failed = validation_pod(spec, "Failed", exit_code=exit_codes.INVALID_DATA, message="kubesft: error: bad")
    body = applied(validating(spec), run(validating(spec), [validation_job(spec)], [failed]))
    edited = copy.deepcopy(body)
    edited["spec"]["training"]["maxLength"] = 2048
    edited["metadata"]["generation"] = 2
    decision = run(edited, [validation_job(spec)], [failed])
    old_name = names.validation_job_name(OWNER.name, settings_digest(parsed(spec)))
    assert DeleteJob(old_name) in decision.actions
    (start,) = [a for a in decision.actions if isinstance(a, RunValidation)]
    assert start.digest == settings_digest(parsed(edited["spec"])) != settings_digest(parsed(spec))
    assert decision.status.phase == "Validating"
