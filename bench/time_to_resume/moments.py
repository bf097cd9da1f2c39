"""When the benchmark's client first saw each Job and each pod phase of a namespace, on watches.

Times are Unix time (``time.time()``): the trainer runs on the same machine (the process node runs
pods as local processes), so its own timestamps and these share one clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import client, watch

JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")


class Moments:
    """``job_added[job]``; ``pod_seen[(job, phase)]`` for the pods the Job controller made."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.job_added: dict[str, float] = {}
        self.pod_seen: dict[tuple[str, str], float] = {}
        self.pod_names: dict[str, str] = {}
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._follow, args=(self._jobs, self._on_job), daemon=True),
            threading.Thread(target=self._follow, args=(self._pods, self._on_pod), daemon=True),
        ]

    def __enter__(self) -> Moments:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _jobs(self, resource_version: str) -> Iterator[dict[str, Any]]:
        batch = client.BatchV1Api(self.api)
        yield from self._stream(batch.list_namespaced_job, resource_version)

    def _pods(self, resource_version: str) -> Iterator[dict[str, Any]]:
        core = client.CoreV1Api(self.api)
        yield from self._stream(core.list_namespaced_pod, resource_version)

    def _stream(self, lister: Callable[..., Any], resource_version: str) -> Iterator[dict[str, Any]]:
        yield from watch.Watch().stream(
            lister, self.namespace, resource_version=resource_version, timeout_seconds=5
        )

    def _follow(
        self, stream: Callable[[str], Iterator[dict[str, Any]]], handle: Callable[[str, Any, float], None]
    ) -> None:
        """Resume each watch where the last ended, so no event between two watches is missed."""
        resource_version = ""
        while not self._stop.is_set():
            try:
                for event in stream(resource_version):
                    seen = time.time()
                    item = event["object"]
                    resource_version = item.metadata.resource_version
                    handle(event["type"], item, seen)
            except client.ApiException as error:
                if error.status == 410:  # too old to resume: start from now
                    resource_version = ""
                time.sleep(0.1)

    def _on_job(self, kind: str, job: Any, seen: float) -> None:
        if kind == "ADDED":
            self.job_added.setdefault(job.metadata.name, seen)

    def _on_pod(self, kind: str, pod: Any, seen: float) -> None:
        labels = pod.metadata.labels or {}
        job = next((labels[key] for key in JOB_NAME_LABELS if key in labels), None)
        if job is None or kind == "DELETED":
            return
        self.pod_names.setdefault(job, pod.metadata.name)
        self.pod_seen.setdefault((job, "Created"), seen)
        if pod.status and pod.status.phase:
            self.pod_seen.setdefault((job, pod.status.phase), seen)
