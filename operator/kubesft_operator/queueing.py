"""Kueue's word on a queued SFTJob: from the Workload Kueue makes for its Job to ``status.queue``.

Pure. ``queue_status`` reads the Workload (as the API returns it, or None before Kueue has made
one), the Job's creation time, the previous ``status.queue`` and the clock, and gives the new
``status.queue`` and, when this look saw an admission for the first time, how long the job
waited for it. Level-triggered like the rest of the decision core: the same inputs give the
same answer, and an admission already recorded (its time is in ``admittedAt``) is not counted
twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from kubesft_api.status import ConditionType, QueueStatus
from kubesft_api.times import parse_time, rfc3339
from kubesft_operator.decisions import World
from kubesft_operator.objects import Job

Workload = Mapping[str, Any]


@dataclass(frozen=True)
class QueueOutcome:
    status: QueueStatus
    admitted_after: float | None = None
    """Seconds the job waited, when this look is the first to see the admission."""


def _condition(workload: Workload | None, kind: str) -> Mapping[str, Any] | None:
    for condition in ((workload or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def _true(condition: Mapping[str, Any] | None) -> bool:
    return condition is not None and condition.get("status") == "True"


def cluster_queue(workload: Workload | None) -> str | None:
    admission = ((workload or {}).get("status") or {}).get("admission") or {}
    name = admission.get("clusterQueue")
    return str(name) if name else None


def eviction(workload: Workload | None) -> tuple[str, str] | None:
    """Kueue's (reason, message) while it holds the job evicted (preempted, for example)."""
    evicted = _condition(workload, "Evicted")
    if _true(evicted) and not _true(_condition(workload, "Admitted")):
        assert evicted is not None
        return str(evicted.get("reason") or "Evicted"), str(evicted.get("message") or "")
    return None


def waiting_message(local_queue: str, workload: Workload | None) -> str:
    """Why the job waits, in Kueue's words where its Workload gives them."""
    where = f"LocalQueue {local_queue}"
    if workload is None:
        return f"waiting for Kueue to admit the Job ({where}; no Workload yet)"
    reserved = _condition(workload, "QuotaReserved")
    if reserved is not None and not _true(reserved) and reserved.get("message"):
        return f"queued in {where}: {reserved['message']}"
    admitted = _condition(workload, "Admitted")
    if _true(reserved) and admitted is not None and not _true(admitted) and admitted.get("message"):
        return f"quota reserved in ClusterQueue {cluster_queue(workload)}; {admitted['message']}"
    return f"waiting for Kueue to admit the Job ({where})"


def queue_status(
    local_queue: str,
    workload: Workload | None,
    previous: QueueStatus | None,
    job_created: str | None,
    now: datetime,
) -> QueueOutcome:
    """The job's ``status.queue`` from its Workload; see the module docstring."""
    before = previous if previous is not None and previous.local_queue == local_queue else None
    total = before.total_wait_seconds if before else 0.0
    admitted = _condition(workload, "Admitted")
    if _true(admitted):
        assert admitted is not None
        at = str(admitted.get("lastTransitionTime") or rfc3339(now))
        status = QueueStatus(
            local_queue=local_queue,
            cluster_queue=cluster_queue(workload),
            state="Admitted",
            message=str(admitted.get("message") or "admitted by Kueue"),
            admitted_at=at,
            wait_seconds=before.wait_seconds if before else None,
            total_wait_seconds=total,
        )
        if before is not None and before.admitted_at == at:
            return QueueOutcome(status)
        since = parse_time(before.waiting_since if before else None) or parse_time(job_created)
        admitted_time = parse_time(at) or now
        waited = max(0.0, (admitted_time - since).total_seconds()) if since else 0.0
        status.wait_seconds = round(waited, 3)
        status.total_wait_seconds = round(total + waited, 3)
        status.waiting_since = None
        return QueueOutcome(status, admitted_after=waited)

    evicted = eviction(workload)
    waiting_since = before.waiting_since if before and before.waiting_since else None
    if waiting_since is None:
        # A first wait starts when the Job was made; a wait after an eviction, when it is seen.
        first = before is None or before.admitted_at is None
        waiting_since = (job_created if first else None) or rfc3339(now)
    return QueueOutcome(
        QueueStatus(
            local_queue=local_queue,
            cluster_queue=cluster_queue(workload) or (before.cluster_queue if before else None),
            state="Evicted" if evicted else "Queued",
            message=f"{evicted[0]}: {evicted[1]}" if evicted else waiting_message(local_queue, workload),
            waiting_since=waiting_since,
            admitted_at=before.admitted_at if before else None,
            wait_seconds=before.wait_seconds if before else None,
            total_wait_seconds=total,
        )
    )


def workload_wanted(
    queue_name: str | None, status_queue: Mapping[str, Any] | None, job_suspended: bool | None
) -> bool:
    """Whether a reconcile needs the Job's Workload: while the Job waits or is held by Kueue, and
    until its admission is recorded. ``job_suspended`` is None when there is no Job."""
    if not queue_name or job_suspended is None:
        return False
    return job_suspended or (status_queue or {}).get("state") != "Admitted"


def admitted_message(outcome: QueueOutcome) -> str:
    where = f"ClusterQueue {outcome.status.cluster_queue or '?'}"
    return f"admitted by Kueue to {where} after {outcome.admitted_after or 0:.0f}s in the queue"


ConditionChange = tuple[ConditionType, Literal["True", "False"], str, str]


def evicted_conditions(
    evicted: tuple[str, str],
    grace_seconds: int,
    checkpoint: str | None,
    queue: QueueStatus | None,
    *,
    stopping: bool,
) -> list[ConditionChange]:
    """The conditions of a job Kueue has evicted: Suspending while its pods save a checkpoint,
    then Suspended with Kueue's reason until Kueue admits it again."""
    reason, message = evicted
    if stopping:
        return [
            (
                "Suspended",
                "False",
                "Suspending",
                f"Kueue evicted the job ({reason}: {message}); the trainer saves and uploads a "
                f"checkpoint within {grace_seconds}s",
            )
        ]
    where = checkpoint or "the latest checkpoint"
    return [
        (
            "Suspended",
            "True",
            reason,
            f"Kueue evicted the job: {message}; training resumes from {where} when Kueue admits it again",
        ),
        ("Running", "False", "Queued", queue.message if queue else reason),
    ]


def look_at_queue(
    world: World, previous: QueueStatus | None, queue: str | None, job: Job | None
) -> tuple[QueueOutcome | None, tuple[str, str] | None]:
    """The job's new status.queue (None when there is nothing to say: no queue, no Job, or its
    Workload was not looked up) and Kueue's eviction, if it holds the job evicted."""
    if not queue or job is None or not world.workload_looked_up:
        return None, None
    created = job["metadata"].get("creationTimestamp")
    return queue_status(queue, world.workload, previous, created, world.now), eviction(world.workload)
