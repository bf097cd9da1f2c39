"""Jobs and Pods shaped as the API server returns them, for the operator's pure-function tests.

They are built from the operator's own render functions, then given the status fields that the
Job controller and the kubelet write, and cut down as the operator's watches keep them, so the
inputs are the objects the operator really sees.
"""

from __future__ import annotations

import copy
from typing import Any

from kubesft_api.sftjob import SFTJobSpec, parse_spec
from kubesft_operator import names, watched
from kubesft_operator.objects import Job, Pod, SFTJob
from kubesft_operator.render import Attempt, Owner, TrainerDefaults, render_job

T0 = "2030-01-01T00:00:00Z"
OWNER = Owner(name="chat", namespace="team-a", uid="uid-chat")
DEFAULTS = TrainerDefaults(image="kubesft-trainer:test")

BASE_SPEC: dict[str, Any] = {
    "model": {"uri": "s3://models/tiny", "chatTemplate": "chatml"},
    "dataset": {"uri": "s3://data/chat.jsonl"},
    "training": {"maxSteps": 40},
    "checkpoints": {
        "uri": "s3://ckpt/chat",
        "credentialsSecret": {"name": "s3-credentials"},
        "saveSteps": 10,
    },
    "output": {"uri": "s3://out/chat"},
    "runPolicy": {"backoffLimit": 2, "terminationGracePeriodSeconds": 60},
    # The trainer Job starts at once; the validation stage before it has its own tests.
    "validation": {"enabled": False},
}


def spec_dict(**run_policy: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE_SPEC)
    raw["runPolicy"].update(run_policy)
    return raw


def parsed(raw: dict[str, Any]) -> SFTJobSpec:
    return parse_spec(raw)


def sftjob(
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    generation: int = 1,
    name: str = OWNER.name,
) -> SFTJob:
    return {
        "apiVersion": "kubesft.io/v1alpha1",
        "kind": "SFTJob",
        "metadata": {
            "name": name,
            "namespace": OWNER.namespace,
            "uid": OWNER.uid,
            "generation": generation,
            "annotations": annotations or {},
        },
        "spec": spec if spec is not None else spec_dict(),
        "status": status or {},
    }


def job(
    attempt: int,
    restarts: int = 0,
    spec: dict[str, Any] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    suspend: bool | None = None,
    start_time: str | None = T0,
) -> Job:
    body = render_job(OWNER, parsed(spec or spec_dict()), Attempt(attempt, restarts), DEFAULTS)
    body["metadata"]["uid"] = f"uid-job-{attempt}"
    if suspend is not None:
        body["spec"]["suspend"] = suspend
    body["status"] = {"conditions": conditions or []}
    if start_time:
        body["status"]["startTime"] = start_time
    return watched.keep_job(body)


def job_condition(kind: str, reason: str = "", message: str = "", at: str = T0) -> dict[str, Any]:
    return {"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": at}


def pod(
    attempt: int,
    phase: str = "Running",
    *,
    index: int = 0,
    exit_code: int | None = None,
    reason: str | None = None,
    message: str | None = None,
    waiting: tuple[str, str] | None = None,
    pod_reason: str | None = None,
    ip: str = "10.1.0.5",
    start_time: str = T0,
    deleting: bool = False,
) -> Pod:
    job_name = names.job_name(OWNER.name, attempt)
    state: dict[str, Any]
    if waiting is not None:
        state = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
    elif exit_code is not None:
        terminated: dict[str, Any] = {"exitCode": exit_code, "reason": reason or "Error"}
        if message is not None:
            terminated["message"] = message
        state = {"terminated": terminated}
    else:
        state = {"running": {"startedAt": start_time}}
    status: dict[str, Any] = {
        "phase": phase,
        "containerStatuses": [{"name": names.CONTAINER_NAME, "image": DEFAULTS.image, "state": state}],
        "conditions": [],
    }
    if phase != "Pending":
        status["startTime"] = start_time
        status["podIP"] = ip
    if pod_reason:
        status["reason"] = pod_reason
        status["message"] = f"pod was {pod_reason.lower()}"
    metadata: dict[str, Any] = {
        "name": f"{job_name}-{index}abcd",
        "namespace": OWNER.namespace,
        "labels": {**names.child_labels(OWNER.name), names.LABEL_ATTEMPT: str(attempt), "job-name": job_name},
        "annotations": {names.ANNOTATION_COMPLETION_INDEX: str(index)},
        # The Job controller makes each pod's Job its controller; job() gives that Job this uid.
        "ownerReferences": [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": job_name,
                "uid": f"uid-job-{attempt}",
                "controller": True,
            }
        ],
    }
    if deleting:
        metadata["deletionTimestamp"] = T0
    return watched.keep_pod({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "status": status})
