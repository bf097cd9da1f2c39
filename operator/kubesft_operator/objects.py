"""The Kubernetes objects the operator reads, typed as ``watched`` keeps them.

Only the fields the operator reads are declared; ``watched.keep_*`` cuts each watched object
down to them. Spec and status of an SFTJob stay the JSON the API server returns: the models of
``kubesft_api`` validate them. Values the operator writes into labels and annotations are read
back here, as numbers.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from kubesft_api.integers import int_or
from kubesft_operator import names


class OwnerReference(TypedDict, total=False):
    kind: str
    uid: str
    controller: bool


class ObjectMeta(TypedDict, total=False):
    name: str
    namespace: str
    uid: str
    resourceVersion: str
    """Opaque: equal or not, never older or newer."""
    generation: int
    creationTimestamp: str
    deletionTimestamp: str
    labels: dict[str, str]
    annotations: dict[str, str]
    finalizers: list[str]
    ownerReferences: list[OwnerReference]


class SFTJob(TypedDict):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: dict[str, Any]
    status: dict[str, Any]


class Reason(TypedDict, total=False):
    """Why a state or condition is what it is: a word for programs and a message for people."""

    reason: str
    message: str


class Condition(Reason, total=False):
    """A condition of a Job or a Pod."""

    type: str
    status: Literal["True", "False", "Unknown"]
    lastTransitionTime: str


class JobSpec(TypedDict, total=False):
    suspend: bool
    activeDeadlineSeconds: int
    completions: int


class JobStatus(TypedDict, total=False):
    conditions: list[Condition]
    startTime: str
    completionTime: str


class Job(TypedDict):
    metadata: ObjectMeta
    spec: JobSpec
    status: JobStatus


class ContainerStateTerminated(Reason, total=False):
    exitCode: int


class ContainerState(TypedDict, total=False):
    waiting: Reason
    running: dict[str, Any]
    terminated: ContainerStateTerminated


class ContainerStatus(TypedDict, total=False):
    name: str
    image: str
    state: ContainerState


class PodStatus(Reason, total=False):
    phase: str
    podIP: str
    startTime: str
    conditions: list[Condition]
    containerStatuses: list[ContainerStatus]


class Pod(TypedDict):
    metadata: ObjectMeta
    status: PodStatus


def attempt_of(job: Job) -> int:
    """The attempt a Job runs, or -1 for a Job that does not say."""
    meta = job["metadata"]
    value = (meta.get("annotations") or {}).get(names.ANNOTATION_ATTEMPT)
    return int_or(value or (meta.get("labels") or {}).get(names.LABEL_ATTEMPT), -1)


def restarts_of(job: Job | None) -> int:
    """The restart count a Job was created with."""
    if job is None:
        return 0
    return int_or((job["metadata"].get("annotations") or {}).get(names.ANNOTATION_RESTARTS), 0)


def pod_attempt(pod: Pod) -> int:
    """The attempt a Pod belongs to, or -1 for a Pod that does not say."""
    return int_or((pod["metadata"].get("labels") or {}).get(names.LABEL_ATTEMPT), -1)


def controller_uid(obj: Job | Pod, kind: str) -> str | None:
    """The uid of the ``kind`` object that controls ``obj``: who it belongs to, whatever its labels say."""
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == kind:
            return ref.get("uid")
    return None


def is_deleting(obj: Job | Pod) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def owned_jobs(jobs: list[Job], sftjob_uid: str) -> list[Job]:
    """The Jobs the SFTJob ``sftjob_uid`` controls. Labels select what the watch delivers, but
    anyone who can create Jobs can copy labels; only the owner reference says whose a Job is."""
    return [job for job in jobs if controller_uid(job, "SFTJob") == sftjob_uid]


def owned_pods(pods: list[Pod], jobs: list[Job]) -> list[Pod]:
    """The Pods one of ``jobs`` controls, whatever labels other pods carry."""
    uids = {job["metadata"].get("uid") for job in jobs}
    return [pod for pod in pods if controller_uid(pod, "Job") in uids]
