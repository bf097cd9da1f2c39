"""What the scale benchmark reads while it runs: when Jobs and SFTJob statuses appear (watches),
and CPU time and memory of the processes on the hot path (/proc)."""

from __future__ import annotations

import collections
import functools
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client

from kubesft_api.sftjob import GROUP, PLURAL, VERSION
from kubesft_operator import names
from testing.devcluster.api_watch import RawWatch

TERMINAL = ("Succeeded", "Failed")


class Observer:
    """Watches the Jobs and SFTJobs of one namespace and notes when each Job first appears or
    finishes and when each SFTJob first has a status phase or a terminal one (monotonic time)."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        batch, custom = client.BatchV1Api(api), client.CustomObjectsApi(api)
        self.job_seen: dict[str, float] = {}
        self.job_done: dict[str, float] = {}
        """When a Job of each SFTJob first ended (succeeded or failed)."""
        self.jobs_per_sftjob: collections.Counter[str] = collections.Counter()
        self.phase_seen: dict[str, float] = {}
        self.finished: dict[str, tuple[float, str]] = {}
        self.waiting_reason: dict[str, str] = {}
        """The reason of each SFTJob's Running condition, as last seen."""
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._watches = [
            RawWatch(
                functools.partial(batch.list_namespaced_job, namespace),
                lambda items: self._each(self._job, items),
                lambda kind, job: self._job(job),
                self._error,
            ),
            RawWatch(
                functools.partial(custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL),
                lambda items: self._each(self._sftjob, items),
                lambda kind, body: self._sftjob(body),
                self._error,
            ),
        ]

    def start(self) -> None:
        for watch in self._watches:
            watch.start()

    def stop(self) -> None:
        for watch in self._watches:
            watch.stop()

    @staticmethod
    def _each(note: Callable[[dict[str, Any]], None], items: list[dict[str, Any]]) -> None:
        for item in items:
            note(item)

    def _error(self, err: Exception) -> None:
        self.errors.append(f"{type(err).__name__}: {err}")

    def _job(self, job: dict[str, Any]) -> None:
        now = time.monotonic()
        meta, status = job["metadata"], job.get("status") or {}
        owner = (meta.get("labels") or {}).get(names.LABEL_JOB)
        if not owner:
            return
        with self._lock:
            if meta["name"] not in self.job_seen:
                self.job_seen[meta["name"]] = now
                self.jobs_per_sftjob[owner] += 1
            ended = status.get("succeeded") or status.get("failed")
            if ended and owner not in self.job_done:
                self.job_done[owner] = now

    def _sftjob(self, body: dict[str, Any]) -> None:
        now = time.monotonic()
        name, status = body["metadata"]["name"], body.get("status") or {}
        phase = status.get("phase")
        with self._lock:
            if phase and name not in self.phase_seen:
                self.phase_seen[name] = now
            if phase in TERMINAL and name not in self.finished:
                self.finished[name] = (now, phase)
            for condition in status.get("conditions") or []:
                if condition.get("type") == "Running":
                    self.waiting_reason[name] = condition.get("reason", "")


def wait_for(condition: Callable[[], bool], deadline: float, step: float = 0.1) -> bool:
    """Poll ``condition()`` until it is true or ``deadline`` (monotonic) passes; whether it became true."""
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
    return True


def rss_mib(pid: int, field: str = "VmHWM") -> float:
    """VmHWM: peak resident memory so far; VmRSS: resident now."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine (all CPUs), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class CpuLedger:
    """CPU seconds of each process on the machine's hot path, read at named moments.

    The process node and this client share this process; its children (the stand-in trainers
    and the node's helper commands that set up each pod's sandbox) count once reaped.
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.readings: dict[str, dict[str, float]] = {}

    def read(self, moment: str) -> None:
        usage = os.times()
        reading = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        reading["process node + client"] = usage.user + usage.system
        reading["pods + node helper commands"] = usage.children_user + usage.children_system
        reading["machine (all CPUs)"] = machine_cpu_seconds()
        self.readings[moment] = reading

    def between(self, start: str, end: str) -> dict[str, float]:
        first, last = self.readings[start], self.readings[end]
        return {name: round(last[name] - first[name], 2) for name in first}
