"""The trainer pods of an SFTJob, found by the labels the operator puts on them, and their logs.

The label keys and container name come from the pod contract the operator renders pods from.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import client
from kubernetes.client import ApiException

from kubesft.errors import LogsUnavailableError, NotFoundError, api_error, server_message
from kubesft_api.pod_contract import ANNOTATION_COMPLETION_INDEX, CONTAINER_NAME, LABEL_ATTEMPT, LABEL_JOB


def selector(job: str, attempt: int | None = None) -> str:
    """The trainer pods of SFTJob ``job`` (of one attempt): those with an attempt label, so not
    its validation pod."""
    return f"{LABEL_JOB}={job}," + (f"{LABEL_ATTEMPT}={attempt}" if attempt is not None else LABEL_ATTEMPT)


def pod_rank(pod: Any) -> int:
    """The node rank of a trainer pod: its completion index, 0 in a single-node job."""
    meta = pod.metadata
    raw = (meta.annotations or {}).get(ANNOTATION_COMPLETION_INDEX)
    raw = raw if raw is not None else (meta.labels or {}).get(ANNOTATION_COMPLETION_INDEX)
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0


def _started(pod: Any) -> str | None:
    """None when the trainer container has a log to read; else why it has none yet."""
    statuses = (pod.status.container_statuses if pod.status else None) or []
    for status in statuses:
        if status.name != CONTAINER_NAME:
            continue
        state = status.state
        if state is not None and (state.running is not None or state.terminated is not None):
            return None
        if state is not None and state.waiting is not None:
            return str(state.waiting.reason or "waiting")
    return str((pod.status.phase if pod.status else None) or "Pending")


class PodLogs:
    """Reads the log of one rank of one attempt of an SFTJob."""

    def __init__(self, api: client.ApiClient, namespace: str, poll_seconds: float = 1.0) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.poll_seconds = poll_seconds

    def find(self, job: str, attempt: int, rank: int) -> Any | None:
        try:
            pods = self.core.list_namespaced_pod(self.namespace, label_selector=selector(job, attempt)).items
        except ApiException as error:
            raise api_error(error, verb="list", resource="pods", namespace=self.namespace) from None
        matching = [pod for pod in pods if pod_rank(pod) == rank]
        # A retried pod of the same rank (none today: Jobs run with backoffLimit 0): the newest.
        matching.sort(key=lambda pod: pod.metadata.creation_timestamp or 0)
        return matching[-1] if matching else None

    def ready_pod(self, job: str, attempt: int, rank: int, follow: bool, finished: Callable[[], bool]) -> Any:
        """The pod once its trainer has a log. With ``follow`` wait for it, until ``finished()``."""
        what = f"rank {rank} of attempt {attempt} of SFTJob {job}"
        while True:
            pod = self.find(job, attempt, rank)
            waiting = _started(pod) if pod is not None else "no pod"
            if waiting is None:
                return pod
            if not follow or finished():
                if pod is None:
                    raise NotFoundError(
                        f"no pod for {what} in namespace {self.namespace} "
                        "(not started yet, or removed with its Job)"
                    )
                raise LogsUnavailableError(f"pod {pod.metadata.name} ({what}) has no log yet: {waiting}")
            time.sleep(self.poll_seconds)

    def lines(self, pod_name: str, follow: bool) -> Iterator[str]:
        try:
            response = self.core.read_namespaced_pod_log(
                pod_name, self.namespace, container=CONTAINER_NAME, follow=follow, _preload_content=False
            )
        except ApiException as error:
            if error.status == 400:
                raise LogsUnavailableError(
                    f"pod {pod_name} has no log yet: {server_message(error)}"
                ) from None
            raise api_error(
                error, verb="get", resource="pods/log", name=pod_name, namespace=self.namespace
            ) from None
        try:
            yield from split_lines(response.stream(amt=None, decode_content=False))
        finally:
            response.release_conn()


def split_lines(chunks: Iterator[bytes]) -> Iterator[str]:
    """Lines of a byte stream, without their newline; a last line without one is kept."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    for chunk in chunks:
        pending += decoder.decode(chunk)
        *complete, pending = pending.split("\n")
        yield from (line.removesuffix("\r") for line in complete)
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending
