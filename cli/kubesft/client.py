"""``kubesft.Client``: SFTJobs from Python, with the user's kubeconfig and context.

Every method raises a ``kubesft.errors.KubesftError`` subclass whose message names the cause
(no kubeconfig, CRD not installed, forbidden, not found, invalid spec), never a bare
``ApiException``.
"""

from __future__ import annotations

import builtins
import datetime
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kubernetes import client, watch
from kubernetes.client import ApiException
from urllib3.exceptions import HTTPError

from kubesft.connection import Connection, connect
from kubesft.download import download_output
from kubesft.errors import ApiError, KubesftError, NotFoundError, WaitTimeoutError, api_error
from kubesft.job import SFTJob
from kubesft.pods import PodLogs
from kubesft_api.sftjob import GROUP, PLURAL, VERSION

WATCH_SECONDS = 300
"""Longest single watch request; the client reconnects from the last resourceVersion after it."""


@dataclass(frozen=True)
class WatchEvent:
    type: Literal["ADDED", "MODIFIED", "DELETED"]
    job: SFTJob


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event about an SFTJob, as the operator posted it."""

    type: str
    reason: str
    message: str
    count: int
    time: datetime.datetime | None


def _change(job: SFTJob) -> tuple[Any, ...]:
    """What a ``wait`` callback is called again for: phase, step, loss or a condition moved."""
    status = job.status
    if status is None:
        return ()
    progress = status.progress
    return (
        status.phase,
        status.attempt,
        progress.step if progress else None,
        progress.loss if progress else None,
        tuple((c.type, c.status, c.reason) for c in status.conditions),
    )


class Client:
    """SFTJobs of one cluster, in ``namespace`` unless a call names another.

    ``kubeconfig`` and ``context`` default as for kubectl ($KUBECONFIG, then ~/.kube/config, and
    its current context; inside a pod its ServiceAccount); ``namespace`` defaults to the
    context's namespace, else ``default``.
    """

    def __init__(
        self, kubeconfig: str | Path | None = None, context: str | None = None, namespace: str | None = None
    ) -> None:
        self.connection: Connection = connect(str(kubeconfig) if kubeconfig else None, context, namespace)
        self.namespace = self.connection.namespace
        self.custom = client.CustomObjectsApi(self.connection.api)
        self.core = client.CoreV1Api(self.connection.api)

    def _ns(self, namespace: str | None) -> str:
        return namespace or self.namespace

    def _call(self, verb: str, name: str | None, namespace: str | None, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except ApiException as error:
            raise api_error(error, verb=verb, name=name, namespace=namespace) from None
        except HTTPError as error:
            raise ApiError(
                f"cannot reach the API server at {self.connection.server}: {_first_line(error)}"
            ) from None

    # --- one SFTJob -------------------------------------------------------------------------------

    def create(self, job: SFTJob, namespace: str | None = None) -> SFTJob:
        """Create ``job`` (in its own namespace, else ``namespace``, else the client's)."""
        ns = self._ns(namespace or job.namespace)
        body = job.to_dict()
        body["metadata"]["namespace"] = ns
        # The API server fills a section's defaults only when the section exists. Without
        # runPolicy, a later suspend would add it and its defaulted fields, which admission
        # refuses as changes to a running job; with it, they are set once, at creation.
        body["spec"].setdefault("runPolicy", {})
        created = self._call(
            "create",
            job.name,
            ns,
            lambda: self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body),
        )
        return SFTJob.from_dict(created)

    def get(self, name: str, namespace: str | None = None) -> SFTJob:
        ns = self._ns(namespace)
        body = self._call(
            "get",
            name,
            ns,
            lambda: self.custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name),
        )
        return SFTJob.from_dict(body)

    def delete(self, name: str, namespace: str | None = None) -> None:
        """Delete the SFTJob; its Jobs and pods go with it, its checkpoints and output stay."""
        ns = self._ns(namespace)
        self._call(
            "delete",
            name,
            ns,
            lambda: self.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name),
        )

    def suspend(self, name: str, namespace: str | None = None) -> SFTJob:
        """Stop the pods after a last checkpoint (``spec.runPolicy.suspend: true``)."""
        return self._set_suspend(name, namespace, True)

    def resume(self, name: str, namespace: str | None = None) -> SFTJob:
        """Start again from the newest checkpoint (``spec.runPolicy.suspend: false``)."""
        return self._set_suspend(name, namespace, False)

    def _set_suspend(self, name: str, namespace: str | None, suspend: bool) -> SFTJob:
        ns = self._ns(namespace)
        patch = {"spec": {"runPolicy": {"suspend": suspend}}}
        body = self._call(
            "patch",
            name,
            ns,
            lambda: self.custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, patch),
        )
        return SFTJob.from_dict(body)

    # --- many, and over time ----------------------------------------------------------------------

    def _list_raw(self, namespace: str | None, all_namespaces: bool, field_selector: str | None) -> Any:
        extra = {"field_selector": field_selector} if field_selector else {}
        if all_namespaces:
            return self._call(
                "list",
                None,
                None,
                lambda: self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, **extra),
            )
        ns = self._ns(namespace)
        return self._call(
            "list",
            None,
            ns,
            lambda: self.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, **extra),
        )

    def list(self, namespace: str | None = None, *, all_namespaces: bool = False) -> builtins.list[SFTJob]:
        items = self._list_raw(namespace, all_namespaces, None).get("items") or []
        return [SFTJob.from_dict(item) for item in items]

    def watch(
        self,
        name: str | None = None,
        namespace: str | None = None,
        *,
        timeout: float | None = None,
        resource_version: str | None = None,
    ) -> Iterator[WatchEvent]:
        """SFTJob changes as they happen: first the current objects (ADDED), unless
        ``resource_version`` says where to start; ends after ``timeout`` seconds, if given."""
        ns = self._ns(namespace)
        selector = f"metadata.name={name}" if name else None
        deadline = None if timeout is None else time.monotonic() + timeout
        version = resource_version
        while True:
            if version is None:
                listing = self._list_raw(ns, False, selector)
                version = listing["metadata"]["resourceVersion"]
                for item in listing.get("items") or []:
                    yield WatchEvent("ADDED", SFTJob.from_dict(item))
            left = WATCH_SECONDS if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return
            watcher = watch.Watch()
            extra = {"field_selector": selector} if selector else {}
            try:
                for event in watcher.stream(
                    self.custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    ns,
                    PLURAL,
                    resource_version=version,
                    timeout_seconds=max(1, int(min(left, WATCH_SECONDS))),
                    **extra,
                ):
                    body = event["object"]
                    version = body["metadata"]["resourceVersion"]
                    yield WatchEvent(event["type"], SFTJob.from_dict(body))
            except ApiException as error:
                # The kubernetes client raises a watch's ERROR events, 410 Gone after one retry.
                if error.status != 410:
                    raise api_error(error, verb="watch", name=name, namespace=ns) from None
                version = None  # too old to resume from: list again
            except HTTPError as error:
                raise ApiError(f"lost the watch on {self.connection.server}: {_first_line(error)}") from None
            finally:
                watcher.stop()

    def wait(
        self,
        name: str,
        namespace: str | None = None,
        *,
        timeout: float | None = None,
        callback: Callable[[SFTJob], None] | None = None,
    ) -> SFTJob:
        """Block until the SFTJob has Succeeded or Failed, and return it (check ``job.phase``).

        ``callback(job)`` is called with the job now and on each change of phase, step, loss or
        conditions. Raises ``WaitTimeoutError`` after ``timeout`` seconds.
        """
        job = self.get(name, namespace)
        last = _change(job)
        if callback is not None:
            callback(job)
        if job.finished:
            return job
        version = str(job.raw.get("metadata", {}).get("resourceVersion") or "") or None
        for event in self.watch(name, namespace, timeout=timeout, resource_version=version):
            if event.type == "DELETED":
                raise NotFoundError(f"SFTJob {name} was deleted while waiting for it")
            job = event.job
            if callback is not None and _change(job) != last:
                callback(job)
            last = _change(job)
            if job.finished:
                return job
        raise WaitTimeoutError(
            f"SFTJob {name} did not finish within {timeout:g}s (phase {job.phase or 'unknown'})"
        )

    # --- what happened ----------------------------------------------------------------------------

    def events(self, name: str, namespace: str | None = None) -> builtins.list[Event]:
        """Events about the SFTJob, oldest first."""
        ns = self._ns(namespace)
        selector = f"involvedObject.kind=SFTJob,involvedObject.name={name}"
        try:
            items = self.core.list_namespaced_event(ns, field_selector=selector).items
        except ApiException as error:
            raise api_error(error, verb="list", resource="events", namespace=ns) from None
        oldest = datetime.datetime.min.replace(tzinfo=datetime.UTC)
        # Times are to the second; the resourceVersion orders events written within one.
        items = sorted(
            items,
            key=lambda item: (
                item.last_timestamp or item.event_time or item.first_timestamp or oldest,
                _version(item.metadata.resource_version if item.metadata else None),
            ),
        )
        return [
            Event(
                type=str(item.type or ""),
                reason=str(item.reason or ""),
                message=str(item.message or ""),
                count=int(item.count or 1),
                time=item.last_timestamp or item.event_time or item.first_timestamp,
            )
            for item in items
        ]

    def logs(
        self,
        name: str,
        namespace: str | None = None,
        *,
        follow: bool = False,
        rank: int = 0,
        attempt: int | None = None,
    ) -> Iterator[str]:
        """Lines of a trainer pod's log: node ``rank`` of ``attempt`` (default: the current one).

        With ``follow`` it waits for the pod to start and yields lines until the trainer exits.
        """
        ns = self._ns(namespace)
        job = self.get(name, ns)
        chosen = job.attempt if attempt is None else attempt
        reader = PodLogs(self.connection.api, ns)
        pod = reader.ready_pod(name, chosen, rank, follow, lambda: self.get(name, ns).finished)
        try:
            yield from reader.lines(pod.metadata.name, follow)
        except HTTPError as error:
            raise ApiError(f"lost the log of pod {pod.metadata.name}: {_first_line(error)}") from None

    def download(
        self,
        name: str,
        directory: str | Path,
        namespace: str | None = None,
        *,
        on_file: Callable[[str, int], None] | None = None,
    ) -> builtins.list[Path]:
        """Copy the output model of a Succeeded SFTJob from object storage into ``directory``."""
        return download_output(self.get(name, namespace), Path(directory), on_file=on_file)


def _version(resource_version: str | None) -> int:
    return int(resource_version) if resource_version and resource_version.isdigit() else 0


def _first_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


__all__ = ["Client", "Event", "KubesftError", "WatchEvent"]
