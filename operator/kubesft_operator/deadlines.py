"""Time limits of an SFTJob as the Jobs carry them: what is left of activeDeadlineSeconds, and
when a finished job's TTL runs out. Pure: the clock comes in as an argument."""

from __future__ import annotations

from datetime import datetime, timedelta

from kubesft_api.times import parse_time
from kubesft_operator.decisions import SetJobDeadline
from kubesft_operator.objects import Job

DEADLINE_SLACK_SECONDS = 5
"""A Job's deadline this close to the wanted one is left alone, so clocks' jitter costs no patch."""


def seconds_left(deadline: int | None, started: str | None, now: datetime) -> int | None:
    """What a new attempt's Job may still run of ``deadline`` (None: no deadline), at least 1 s."""
    if deadline is None:
        return None
    start = parse_time(started)
    used = (now - start).total_seconds() if start else 0.0
    return max(1, int(deadline - used))


def overdue(deadline: int | None, started: str | None, now: datetime) -> bool:
    """Whether a job started at ``started`` has run past ``deadline`` seconds."""
    start = parse_time(started)
    return bool(deadline and start and now >= start + timedelta(seconds=deadline))


def deadline_message(deadline: int | None) -> str:
    return (
        f"the job ran longer than spec.runPolicy.activeDeadlineSeconds ({deadline}s); "
        "its latest checkpoint is kept"
    )


def job_deadline_change(deadline: int | None, job: Job | None, started: str | None) -> SetJobDeadline | None:
    """The patch that keeps ``job``'s own deadline at what is left of the SFTJob's (``deadline``,
    counted from ``started``), which may have been changed since the Job was made; None if right
    (or no Job)."""
    if job is None:
        return None
    current = job["spec"].get("activeDeadlineSeconds")
    name = job["metadata"]["name"]
    if deadline is None:
        return SetJobDeadline(name, None) if current is not None else None
    job_started = parse_time(job["status"].get("startTime"))
    start = parse_time(started)
    if job_started is None or start is None:
        return None
    wanted = max(1, int(deadline - (job_started - start).total_seconds()))
    if current is None or abs(int(current) - wanted) > DEADLINE_SLACK_SECONDS:
        return SetJobDeadline(name, wanted)
    return None


def ttl_left(ttl: int | None, completed: str | None, now: datetime) -> float | None:
    """Seconds until a finished job's TTL runs out (0 or less: it has), or None without one."""
    finished = parse_time(completed)
    if ttl is None or finished is None:
        return None
    return (finished + timedelta(seconds=int(ttl)) - now).total_seconds()
