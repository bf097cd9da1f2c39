"""The trainer Job's own deadline, kept at what is left of the SFTJob's."""

from __future__ import annotations

from kubesft_api.sftjob import SFTJobSpec
from kubesft_api.times import parse_time
from kubesft_operator.decisions import SetJobDeadline
from kubesft_operator.objects import Job

_DEADLINE_SLACK_SECONDS = 5


def deadline_change(spec: SFTJobSpec, job: Job, start_time: str | None) -> SetJobDeadline | None:
    """The change that keeps ``job``'s deadline at what is left of runPolicy.activeDeadlineSeconds
    (counted from the SFTJob's ``start_time``), which may have changed; None when it is right."""
    deadline = spec.run_policy.active_deadline_seconds
    current = job["spec"].get("activeDeadlineSeconds")
    job_started = parse_time(job["status"].get("startTime"))
    started = parse_time(start_time)
    if deadline is None:
        return SetJobDeadline(job["metadata"]["name"], None) if current is not None else None
    if job_started is None or started is None:
        return None
    wanted = max(1, int(deadline - (job_started - started).total_seconds()))
    if current is None or abs(int(current) - wanted) > _DEADLINE_SLACK_SECONDS:
        return SetJobDeadline(job["metadata"]["name"], wanted)
    return None
