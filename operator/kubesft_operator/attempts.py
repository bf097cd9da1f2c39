"""What a trainer Job and its Pods say about an attempt: running, waiting, finished or failed, and why.

Pure functions over the objects as the operator keeps them (``objects``): the observed Job and
Pods in, an ``AttemptState`` out.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from kubesft_api import exit_codes, pod_contract
from kubesft_api.integers import int_or
from kubesft_operator import names
from kubesft_operator.objects import Condition, ContainerStatus, Job, Pod

TRAINER_ERROR_PREFIX = "kubesft: error: "
MAX_MESSAGE = 2000
_EVICTION_REASONS = frozenset(
    {"Evicted", "Preempted", "Preempting", "Shutdown", "NodeShutdown", "Terminated", "NodeLost"}
)
_PULL_REASONS = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"})
_FAILURE_RANK = {"permanent": 0, "TrainerError": 1, "PodFailed": 2, "Killed": 3, "Preempted": 4}


@dataclass(frozen=True)
class Failure:
    """Why an attempt failed, and whether another attempt could succeed."""

    reason: str
    message: str
    retryable: bool
    exit_code: int | None = None
    disruption: bool = False
    """Stopped from outside (preemption, eviction, a node going away), not by a fault of the run:
    the next attempt does not count against ``runPolicy.backoffLimit``."""


AttemptPhase = Literal["Missing", "Stopping", "Waiting", "Queued", "Running", "Succeeded", "Failed"]


@dataclass(frozen=True)
class AttemptState:
    """The state of one attempt, read from its Job and Pods.

    Missing: no Job and no pods. Stopping: the Job is gone or suspended but pods still shut
    down. Waiting: pods exist and none runs yet (reason says why). Queued: the Job is suspended
    (Kueue or a suspended SFTJob) and no pod is left.
    """

    phase: AttemptPhase
    reason: str = ""
    message: str = ""
    failure: Failure | None = None
    started_at: str | None = None
    finished_at: str | None = None
    live_pods: int = 0
    rank0_pod_ip: str | None = None
    retention_warning: str | None = None
    """A succeeded trainer's RetentionRegressed message, from its termination message."""


def trainer_reason(message: str | None) -> str:
    """The trainer's one-line failure reason out of a termination message (or a log tail)."""
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(TRAINER_ERROR_PREFIX):
            return line.removeprefix(TRAINER_ERROR_PREFIX)[:MAX_MESSAGE]
    return (lines[-1] if lines else "")[:MAX_MESSAGE]


def retention_warning(pods: Iterable[Pod]) -> str | None:
    """The RetentionRegressed message a succeeded rank 0 left in its termination message, if any."""
    prefix = f"{pod_contract.TRAINER_WARNING_PREFIX}{pod_contract.RETENTION_REGRESSED}: "
    for pod in pods:
        message = _trainer_status(pod).get("state", {}).get("terminated", {}).get("message") or ""
        for line in message.splitlines():
            if _rank(pod) == 0 and line.strip().startswith(prefix):
                return line.strip().removeprefix(prefix)[:MAX_MESSAGE]
    return None


def _trainer_status(pod: Pod) -> ContainerStatus:
    for status in pod["status"].get("containerStatuses") or []:
        if status.get("name") == names.CONTAINER_NAME:
            return status
    return {}


def _phase(pod: Pod) -> str | None:
    return pod["status"].get("phase")


def _is_live(pod: Pod) -> bool:
    return _phase(pod) not in ("Succeeded", "Failed")


def _rank(pod: Pod) -> int:
    index = (pod["metadata"].get("annotations") or {}).get(names.ANNOTATION_COMPLETION_INDEX)
    return int_or(index, 0)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _oom_advice() -> str:
    return (
        "Give the pod more memory (spec.resources.memory), or use less: a smaller "
        "spec.training.perDeviceBatchSize or maxLength, spec.training.gradientCheckpointing: true, "
        "or LoRA (spec.lora.enabled)."
    )


def pod_failure(pod: Pod) -> Failure:
    """Classify a Failed trainer pod by the trainer's exit code and what Kubernetes reports."""
    name = pod["metadata"].get("name", "?")
    status = pod["status"]
    disrupted = any(
        c.get("type") == "DisruptionTarget" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    if status.get("reason") in _EVICTION_REASONS or disrupted:
        detail = status.get("message") or status.get("reason") or "disrupted"
        return Failure(
            "Preempted", f"pod {name} was preempted or evicted: {detail}", retryable=True, disruption=True
        )
    terminated = _trainer_status(pod).get("state", {}).get("terminated")
    if not terminated:
        detail = status.get("message") or status.get("reason") or "no container status"
        return Failure("PodFailed", f"pod {name} failed before the trainer ran: {detail}", retryable=True)
    code = int(terminated.get("exitCode", -1))
    reason = trainer_reason(terminated.get("message"))
    if terminated.get("reason") == "OOMKilled":
        return Failure(
            "OOMKilled",
            f"pod {name} ran out of memory (OOMKilled). {_oom_advice()}",
            retryable=False,
            exit_code=code,
        )
    if code == exit_codes.INVALID_CONFIG:
        return Failure("InvalidConfig", reason or "the trainer rejected its config", False, code)
    if code == exit_codes.INVALID_DATA:
        return Failure("InvalidData", reason or "the trainer rejected the data or model", False, code)
    if code == exit_codes.MODEL_UNAVAILABLE:
        return Failure("ModelUnavailable", reason or "the model cannot be reached", False, code)
    if code == exit_codes.STORAGE_UNAVAILABLE:
        return Failure("StorageUnavailable", reason or "the storage cannot be written", False, code)
    if code == exit_codes.PREEMPTED:
        return Failure(
            "Preempted",
            f"pod {name} was stopped and saved a checkpoint (exit {code})",
            retryable=True,
            exit_code=code,
            disruption=True,
        )
    if code > 128:
        return Failure(
            "Killed",
            f"pod {name}: the trainer was killed by {_signal_name(code - 128)} (exit {code})",
            retryable=True,
            exit_code=code,
        )
    detail = f": {reason}" if reason else ""
    return Failure("TrainerError", f"pod {name}: the trainer failed (exit {code}){detail}", True, code)


def _worst(failures: list[Failure]) -> Failure:
    """The failure that says most: permanent ones first, then crashes, then disruptions."""

    def rank(failure: Failure) -> int:
        return _FAILURE_RANK["permanent"] if not failure.retryable else _FAILURE_RANK.get(failure.reason, 2)

    return sorted(failures, key=rank)[0]


def _waiting(pods: list[Pod], namespace: str) -> tuple[str, str]:
    """Why no trainer pod runs yet, as (reason, actionable message)."""
    for pod in pods:
        name = pod["metadata"].get("name", "?")
        waiting = _trainer_status(pod).get("state", {}).get("waiting") or {}
        reason, detail = waiting.get("reason", ""), waiting.get("message", "")
        if reason in _PULL_REASONS:
            image = _trainer_status(pod).get("image", "")
            return reason, (
                f"pod {name} cannot pull the trainer image {image}: {detail}. Check "
                "spec.resources.image (or the operator's trainer image) and the pull secrets."
            ).replace(" : ", ": ")
        if reason in ("CreateContainerConfigError", "CreateContainerError"):
            return reason, (
                f"pod {name} cannot start: {detail}. Create the missing Secret or ConfigMap in "
                f"namespace {namespace} (spec.checkpoints.credentialsSecret, spec.model.tokenSecret "
                "or spec.resources.env); the trainer starts once it exists."
            )
        for condition in pod["status"].get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
                return "Unschedulable", (
                    f"no node can run pod {name}: {condition.get('message', '')}. Check "
                    "spec.resources (gpusPerNode, cpu, memory, nodeSelector, tolerations)."
                )
    return "PodStarting", "waiting for the trainer pods to start"


def _job_condition(job: Job, kind: str) -> Condition | None:
    for condition in job["status"].get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition
    return None


def rank0_ip(pods: Iterable[Pod]) -> str | None:
    """Pod IP of the running rank-0 pod (completion index 0), which serves /progress."""
    for pod in pods:
        status = pod["status"]
        if status.get("phase") == "Running" and _rank(pod) == 0 and status.get("podIP"):
            return str(status["podIP"])
    return None


def observe_attempt(job: Job | None, pods: list[Pod], nodes: int) -> AttemptState:
    """The state of one attempt from its Job (None when absent) and that Job's Pods."""
    live = [p for p in pods if _is_live(p)]
    owner = job or (pods[0] if pods else None)
    namespace = owner["metadata"].get("namespace", "") if owner else ""
    running = [p for p in live if _phase(p) == "Running"]
    started = sorted(s for p in pods if (s := p["status"].get("startTime")) and _phase(p) != "Pending")
    started_at = started[0] if started else None
    base = AttemptState("Missing", started_at=started_at, live_pods=len(live), rank0_pod_ip=rank0_ip(pods))

    if job is None:
        return replace(base, phase="Stopping" if live else "Missing")
    complete = _job_condition(job, "Complete")
    succeeded = [p for p in pods if _phase(p) == "Succeeded"]
    if complete or len(succeeded) >= nodes:
        finished = (complete or {}).get("lastTransitionTime") or job["status"].get("completionTime")
        warning = retention_warning(succeeded)
        return replace(base, phase="Succeeded", finished_at=finished, retention_warning=warning)
    failed_job = _job_condition(job, "Failed")
    if failed_job and failed_job.get("reason") == "DeadlineExceeded":
        failure = Failure(
            "DeadlineExceeded",
            "the job ran longer than spec.runPolicy.activeDeadlineSeconds",
            retryable=False,
        )
        return replace(
            base, phase="Failed", failure=failure, finished_at=failed_job.get("lastTransitionTime")
        )
    if job["spec"].get("suspend"):
        # The Job controller deletes a suspended Job's pods; a trainer stopped that way may end
        # Failed, which is the suspension itself and not a failure of the attempt.
        return replace(base, phase="Stopping" if live else "Queued")
    failed_pods = [p for p in pods if _phase(p) == "Failed"]
    if failed_pods:
        return replace(base, phase="Failed", failure=_worst([pod_failure(p) for p in failed_pods]))
    if failed_job:
        failure = Failure(
            "PodFailed",
            f"Job {job['metadata']['name']} failed: {failed_job.get('message') or failed_job.get('reason')}",
            retryable=True,
        )
        return replace(base, phase="Failed", failure=failure)
    if running:
        return replace(base, phase="Running")
    reason, message = _waiting(live, namespace)
    return replace(base, phase="Waiting", reason=reason, message=message)
