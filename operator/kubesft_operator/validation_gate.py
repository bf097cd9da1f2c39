"""The validation stage: whether a CPU check must pass before the first trainer Job, and what its
Job and pod say.

Pure functions over the observed objects, as in ``attempts``. The check runs once per version of
the trainer settings: its passing report, with the digest of the settings, stays in
``status.validation``, so retries and resumes of the same spec do not repeat it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Literal

from pydantic import ValidationError

from kubesft_api.sftjob import SFTJobSpec
from kubesft_api.status import SFTJobStatus
from kubesft_api.times import rfc3339
from kubesft_api.validation_stage import REPORT_PREFIX, ValidationReport
from kubesft_operator import names
from kubesft_operator.attempts import AttemptState, Failure, observe_attempt
from kubesft_operator.conditions import get_condition, set_condition
from kubesft_operator.decisions import Action, DeleteJob, Note, RunValidation, World
from kubesft_operator.objects import Job, Pod, controller_uid, is_deleting

_RERUN = frozenset({"Preempted"})
"""Failures of the validation pod itself, not of the job: the check runs again."""


def settings_digest(spec: SFTJobSpec) -> str:
    """A digest of what validation checks (the trainer's settings and the world size)."""
    data = spec.trainer_config().model_dump(mode="json", by_alias=True, exclude_none=True)
    data["nodes"], data["gpusPerNode"] = spec.resources.nodes, spec.resources.gpus_per_node
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def passed(status: SFTJobStatus, digest: str) -> bool:
    """Whether the settings of ``digest`` passed validation already."""
    validated = get_condition(status.conditions, "Validated")
    return (
        validated is not None
        and validated.status == "True"
        and status.validation is not None
        and status.validation.spec_digest == digest
    )


def is_validation(obj: Job | Pod) -> bool:
    return (obj["metadata"].get("labels") or {}).get(names.LABEL_STAGE) == names.VALIDATION_STAGE


def _digest_of(job: Job) -> str:
    return (job["metadata"].get("annotations") or {}).get(names.ANNOTATION_SPEC_DIGEST, "")


@dataclass(frozen=True)
class ValidationStep:
    """Where validation stands. Missing: no Job for these settings yet. Running: its pod runs or
    waits (``waiting`` says why). Passed: ``report`` holds the figures. Failed: ``failure`` says
    why the job fails. Rerun: the pod was disrupted, its Job goes and the check starts over."""

    phase: Literal["Missing", "Running", "Passed", "Failed", "Rerun"]
    job_name: str
    stale: tuple[str, ...] = ()
    """Validation Jobs of other settings, to delete."""
    report: ValidationReport | None = None
    failure: Failure | None = None
    waiting: AttemptState | None = None


def _report(pods: list[Pod]) -> ValidationReport | None:
    """The report the succeeded validation pod left as the last line of its termination message."""
    for pod in pods:
        for status in pod["status"].get("containerStatuses") or []:
            message = ((status.get("state") or {}).get("terminated") or {}).get("message") or ""
            lines = [line for line in message.splitlines() if line.startswith(REPORT_PREFIX)]
            if lines:
                try:
                    return ValidationReport.model_validate_json(lines[-1].removeprefix(REPORT_PREFIX))
                except ValidationError:
                    return None
    return None


def observe_validation(sftjob: str, digest: str, jobs: list[Job], pods: list[Pod]) -> ValidationStep:
    """Where the validation of the settings ``digest`` stands, from the SFTJob's Jobs and Pods."""
    name = names.validation_job_name(sftjob, digest)
    mine = [j for j in jobs if is_validation(j)]
    stale = tuple(j["metadata"]["name"] for j in mine if _digest_of(j) != digest and not is_deleting(j))
    job = next((j for j in mine if j["metadata"]["name"] == name), None)
    if job is None or is_deleting(job):
        return ValidationStep("Missing" if job is None else "Running", name, stale)
    uid = job["metadata"].get("uid")
    own = [p for p in pods if is_validation(p) and controller_uid(p, "Job") == uid]
    state = observe_attempt(job, own, 1)
    if state.phase == "Succeeded":
        report = _report(own)
        if report is None:
            failure = Failure("InvalidConfig", "the validation pod succeeded but left no report", False)
            return ValidationStep("Failed", name, stale, failure=failure)
        return ValidationStep("Passed", name, stale, report=report.model_copy(update={"spec_digest": digest}))
    if state.phase == "Failed" and state.failure is not None:
        if state.failure.reason in _RERUN:
            return ValidationStep("Rerun", name, stale, failure=state.failure)
        return ValidationStep("Failed", name, stale, failure=state.failure)
    return ValidationStep("Running", name, stale, waiting=state if state.phase == "Waiting" else None)


@dataclass
class Gate:
    """What validation decides before the first attempt: whether it may start now (``proceed``),
    the actions to take, and the failure to end the job with."""

    proceed: bool
    actions: list[Action] = field(default_factory=list)
    failure: tuple[str, str] | None = None
    events: list[Note] = field(default_factory=list)


def failed_validation(status: SFTJobStatus) -> bool:
    """Whether the job failed its validation, which an edit of the spec can mend."""
    validated = get_condition(status.conditions, "Validated")
    return status.phase == "Failed" and validated is not None and validated.status == "False"


def gate(spec: SFTJobSpec, status: SFTJobStatus, world: World) -> Gate:
    """Validation before the first attempt of ``world``'s SFTJob; sets ``status`` to what it shows."""
    if not spec.validation.enabled:
        return Gate(proceed=True)
    digest = settings_digest(spec)
    if passed(status, digest):
        return Gate(proceed=True)
    now = rfc3339(world.now)
    step = observe_validation(world.sftjob.name, digest, world.jobs, world.pods)
    out = Gate(proceed=False, actions=[DeleteJob(name) for name in step.stale])

    def condition(state: Literal["True", "False", "Unknown"], reason: str, message: str) -> None:
        status.conditions = set_condition(status.conditions, "Validated", state, reason, message, now)

    if step.phase == "Passed" and step.report is not None:
        status.validation = step.report
        warnings = "".join(f"; warning: {warning}" for warning in step.report.warnings)
        condition("True", "Validated", step.report.summary() + warnings)
        note = Note("Warning" if warnings else "Normal", "Validated", step.report.summary() + warnings)
        return Gate(proceed=True, actions=out.actions, events=[note])
    if step.phase == "Failed" and step.failure is not None:
        failure = step.failure
        reason = failure.reason
        message = f"validation failed, no training Job was created: {failure.message}"
        condition("False", reason, message)
        out.failure = (reason, message)
        return out
    if world.refusal is not None:
        out.failure = (world.refusal.reason, world.refusal.message)
        return out
    status.phase, status.stage = "Validating", "Validating"
    if step.phase == "Rerun":
        out.actions.append(DeleteJob(step.job_name))
    elif step.phase == "Missing":
        out.actions.append(RunValidation(spec, digest))
    waiting = step.waiting
    if waiting is not None and waiting.reason != "PodStarting":
        condition("Unknown", waiting.reason, waiting.message)
    else:
        condition(
            "Unknown",
            "Validating",
            f"checking the model, data and storage in a CPU pod (Job {step.job_name}) before the training Job",
        )
    return out
