"""What the state machine decides from, and what it decides.

A ``World`` goes in: the SFTJob, the Jobs and Pods it owns, and the clock. A ``Decision`` comes
out: the status to write, the actions to take, the events to record, annotations to set and
when to look again. The controller carries decisions out; nothing here talks to the API server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from kubesft_api.sftjob import SFTJobSpec
from kubesft_api.status import SFTJobStatus
from kubesft_operator.objects import Job, Pod, SFTJob
from kubesft_operator.records import Signer
from kubesft_operator.render import Attempt


@dataclass(frozen=True)
class SFTJobView:
    """The parts of an SFTJob the state machine reads."""

    name: str
    namespace: str
    uid: str
    generation: int
    spec: dict[str, Any]
    status: dict[str, Any]
    annotations: dict[str, str]
    deleting: bool = False

    @classmethod
    def from_body(cls, body: SFTJob) -> SFTJobView:
        meta = body["metadata"]
        return cls(
            name=meta["name"],
            namespace=meta.get("namespace", ""),
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation") or 1),
            spec=dict(body.get("spec") or {}),
            status=dict(body.get("status") or {}),
            annotations=dict(meta.get("annotations") or {}),
            deleting=bool(meta.get("deletionTimestamp")),
        )


@dataclass(frozen=True)
class Refusal:
    """Why the operator will not start an attempt: a policy or authorization check failed."""

    reason: str
    message: str


@dataclass(frozen=True)
class World:
    """Everything observed about one SFTJob at one moment."""

    sftjob: SFTJobView
    jobs: list[Job]
    pods: list[Pod]
    now: datetime
    job_suspend_supported: bool = False
    """Whether the API server honours Job .spec.suspend (on by default from Kubernetes 1.22)."""
    signer: Signer | None = None
    """Signs and checks the applied-spec record; None leaves it unsigned."""
    refusal: Refusal | None = None
    """Set by the controller when the checks before a start failed: the job fails instead."""
    workload: Mapping[str, Any] | None = None
    """Kueue's Workload of the current Job, when ``workload_looked_up`` (None: Kueue made none)."""
    workload_looked_up: bool = False


@dataclass(frozen=True)
class EnsureChildren:
    """Create (or adopt) the NetworkPolicy if enabled, the ConfigMap, the Service if needed, and
    the Job of ``attempt``."""

    attempt: Attempt
    spec: SFTJobSpec


@dataclass(frozen=True)
class RunValidation:
    """Create (or adopt) the NetworkPolicy if enabled, the ConfigMap, and the CPU-only validation Job
    for the settings of ``digest``."""

    spec: SFTJobSpec
    digest: str


@dataclass(frozen=True)
class DeleteJob:
    """Delete a Job; its pods get SIGTERM and the trainer saves a checkpoint before it exits."""

    name: str


@dataclass(frozen=True)
class SuspendJob:
    """Set the Job's ``.spec.suspend``: the Job controller stops or starts its pods."""

    name: str
    suspend: bool

    def spec_patch(self) -> dict[str, object]:
        return {"suspend": self.suspend}


@dataclass(frozen=True)
class SetJobDeadline:
    """Set (None: drop) the Job's ``.spec.activeDeadlineSeconds``."""

    name: str
    seconds: int | None

    def spec_patch(self) -> dict[str, object]:
        return {"activeDeadlineSeconds": self.seconds}


@dataclass(frozen=True)
class DeleteSFTJob:
    """The TTL after finishing has passed."""


Action = EnsureChildren | RunValidation | DeleteJob | SuspendJob | SetJobDeadline | DeleteSFTJob
StartAction = EnsureChildren | RunValidation
"""The actions that start pods, which the checks before a start must allow."""
JobSpecChange = SuspendJob | SetJobDeadline
"""The actions that merge-patch a Job's spec."""


@dataclass(frozen=True)
class Note:
    """An Event to record on the SFTJob."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass
class Decision:
    status: SFTJobStatus
    actions: list[Action] = field(default_factory=list)
    events: list[Note] = field(default_factory=list)
    annotations: dict[str, str | None] = field(default_factory=dict)
    requeue_after: float | None = None
    """Seconds after which the SFTJob must be looked at again even if nothing changes."""
    queue_wait: float | None = None
    """Seconds from creation (or eviction) to Kueue's admission, once per admission."""
