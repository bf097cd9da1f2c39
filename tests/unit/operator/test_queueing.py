"""Kueue's Workload to status.queue, and what the state machine makes of it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from kubesft_api.status import QueueStatus
from kubesft_operator.decisions import Decision, SFTJobView, World
from kubesft_operator.lifecycle import decide
from kubesft_operator.objects import Job, Pod, SFTJob
from kubesft_operator.queueing import queue_status, waiting_message, workload_wanted
from tests.support.operator_objects import job, pod, sftjob, spec_dict

NOW = datetime(2030, 1, 1, 0, 10, tzinfo=UTC)
CREATED = "2030-01-01T00:00:00Z"
QUOTA = "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu in flavor gpu, 1 more needed"


def workload(*conditions: tuple[str, str, str, str, str], cluster_queue: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {
        "conditions": [
            {"type": kind, "status": state, "reason": reason, "message": message, "lastTransitionTime": at}
            for kind, state, reason, message, at in conditions
        ]
    }
    if cluster_queue:
        status["admission"] = {"clusterQueue": cluster_queue}
    return {"metadata": {"name": "job-chat-0-abcde"}, "spec": {"queueName": "team"}, "status": status}


PENDING = workload(("QuotaReserved", "False", "Pending", QUOTA, "2030-01-01T00:00:01Z"))
ADMITTED = workload(
    (
        "QuotaReserved",
        "True",
        "QuotaReserved",
        "Quota reserved in ClusterQueue team-a",
        "2030-01-01T00:04:00Z",
    ),
    ("Admitted", "True", "Admitted", "The workload is admitted", "2030-01-01T00:04:00Z"),
    cluster_queue="team-a",
)
EVICTED = workload(
    ("QuotaReserved", "False", "Pending", "Preempted", "2030-01-01T00:08:00Z"),
    ("Admitted", "False", "NoReservation", "The workload has no reservation", "2030-01-01T00:08:00Z"),
    (
        "Evicted",
        "True",
        "Preempted",
        "Preempted to accommodate a higher priority workload",
        "2030-01-01T00:08:00Z",
    ),
    cluster_queue="team-a",
)


def test_a_waiting_job_carries_kueues_reason_and_waits_since_its_job_was_made() -> None:
    outcome = queue_status("team", PENDING, None, CREATED, NOW)
    assert outcome.status.state == "Queued"
    assert outcome.status.message == f"queued in LocalQueue team: {QUOTA}"
    assert outcome.status.waiting_since == CREATED
    assert outcome.admitted_after is None


def test_before_kueue_makes_a_workload_the_message_says_so() -> None:
    assert "no Workload yet" in waiting_message("team", None)


def test_an_admission_is_timed_from_the_start_of_the_wait_and_counted_once() -> None:
    queued = queue_status("team", PENDING, None, CREATED, NOW).status
    first = queue_status("team", ADMITTED, queued, CREATED, NOW)
    assert first.admitted_after == 240.0
    assert (first.status.state, first.status.cluster_queue) == ("Admitted", "team-a")
    assert first.status.wait_seconds == first.status.total_wait_seconds == 240.0
    again = queue_status("team", ADMITTED, first.status, CREATED, NOW)
    assert again.admitted_after is None and again.status == first.status


def test_an_eviction_starts_a_new_wait_that_adds_to_the_total() -> None:
    admitted = queue_status("team", ADMITTED, None, CREATED, NOW).status
    evicted = queue_status("team", EVICTED, admitted, CREATED, NOW).status
    assert evicted.state == "Evicted" and evicted.message.startswith("Preempted: ")
    assert evicted.waiting_since == "2030-01-01T00:10:00Z"
    readmitted_at = "2030-01-01T00:12:30Z"
    again = workload(
        ("Admitted", "True", "Admitted", "The workload is admitted", readmitted_at), cluster_queue="team-a"
    )
    outcome = queue_status("team", again, evicted, CREATED, NOW)
    assert outcome.admitted_after == 150.0
    assert outcome.status.total_wait_seconds == 240.0 + 150.0


def test_the_workload_is_read_only_while_it_can_tell_something_new() -> None:
    assert workload_wanted("team", None, True)
    assert workload_wanted("team", {"state": "Queued"}, False)
    assert not workload_wanted("team", {"state": "Admitted"}, False)
    assert workload_wanted("team", {"state": "Admitted"}, True)
    assert not workload_wanted(None, None, True)
    assert not workload_wanted("team", None, None)


def _decide(body: SFTJob, jobs: list[Job], pods: list[Pod], found: dict[str, Any] | None) -> Decision:
    view = SFTJobView.from_body(body)
    world = World(view, jobs, pods, NOW, True, workload=found, workload_looked_up=True)
    return decide(world)


def _applied(body: SFTJob, decision: Decision) -> SFTJob:
    out: SFTJob = json.loads(json.dumps(body))
    out["status"] = decision.status.model_dump(mode="json", by_alias=True, exclude_none=True)
    out["metadata"]["annotations"].update({k: v for k, v in decision.annotations.items() if v is not None})
    return out


def _queued_job(**kwargs: Any) -> Job:
    found = job(0, spec=spec_dict(queueName="team"), **kwargs)
    found["metadata"]["creationTimestamp"] = CREATED
    return found


def _running(decision: Decision) -> Any:
    return next(c for c in decision.status.conditions if c.type == "Running")


def test_a_queued_job_shows_kueues_reason_in_its_running_condition() -> None:
    body = sftjob(spec_dict(queueName="team"))
    body = _applied(body, decide(World(SFTJobView.from_body(body), [], [], NOW, True)))
    decision = _decide(body, [_queued_job(suspend=True)], [], PENDING)
    assert decision.status.phase == "Pending"
    assert (_running(decision).reason, _running(decision).message) == (
        "Queued",
        f"queued in LocalQueue team: {QUOTA}",
    )
    assert decision.status.queue == QueueStatus(
        local_queue="team",
        state="Queued",
        message=f"queued in LocalQueue team: {QUOTA}",
        waiting_since=CREATED,
    )


def test_an_admission_records_the_wait_once_with_an_event() -> None:
    body = sftjob(spec_dict(queueName="team"))
    body = _applied(body, decide(World(SFTJobView.from_body(body), [], [], NOW, True)))
    body = _applied(body, _decide(body, [_queued_job(suspend=True)], [], PENDING))
    running = _decide(body, [_queued_job(suspend=False)], [pod(0)], ADMITTED)
    assert running.status.phase == "Running"
    assert running.queue_wait == 240.0
    assert [n.reason for n in running.events if n.reason == "Admitted"] == ["Admitted"]
    later = _decide(_applied(body, running), [_queued_job(suspend=False)], [pod(0)], ADMITTED)
    assert later.queue_wait is None and not [n for n in later.events if n.reason == "Admitted"]


def test_kueue_preemption_suspends_with_kueues_reason_and_is_no_failure() -> None:
    body = sftjob(spec_dict(queueName="team"))
    body = _applied(body, decide(World(SFTJobView.from_body(body), [], [], NOW, True)))
    body = _applied(body, _decide(body, [_queued_job(suspend=False)], [pod(0)], ADMITTED))
    stopping = _decide(body, [_queued_job(suspend=True)], [pod(0)], EVICTED)
    suspended = next(c for c in stopping.status.conditions if c.type == "Suspended")
    assert (stopping.status.phase, suspended.reason) == ("Running", "Suspending")
    assert "Kueue evicted the job (Preempted" in suspended.message
    body = _applied(body, stopping)
    # The trainer saved and exited; its pod ended Failed, which is the eviction, not a crash.
    stopped = _decide(body, [_queued_job(suspend=True)], [pod(0, "Failed", exit_code=143)], EVICTED)
    suspended = next(c for c in stopped.status.conditions if c.type == "Suspended")
    assert (stopped.status.phase, suspended.status, suspended.reason) == ("Suspended", "True", "Preempted")
    assert stopped.status.restarts == 0 and stopped.actions == []
    assert stopped.status.queue is not None and stopped.status.queue.state == "Evicted"
