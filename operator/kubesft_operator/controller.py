"""Carries out the state machine's decisions against the API server, one SFTJob at a time.

The Kopf handlers hand it what the watches show (from Kopf's in-memory indexes); it decides,
acts, writes the status and records events. Reconciliations of one SFTJob never overlap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
import kopf

from kubesft_api.integers import int_or
from kubesft_api.pod_contract import TRAINER_METRICS_PORT
from kubesft_api.status import SFTJobStatus
from kubesft_api.times import now_utc, parse_time
from kubesft_operator import metrics, names, watched
from kubesft_operator.attempts import rank0_ip
from kubesft_operator.kube import Kube
from kubesft_operator.lifecycle import (
    Decision,
    DeleteJob,
    DeleteSFTJob,
    EnsureChildren,
    SetJobDeadline,
    SFTJobView,
    SuspendJob,
    World,
    decide,
)
from kubesft_operator.progress import fetch_progress, progress_patch
from kubesft_operator.render import (
    Owner,
    TrainerDefaults,
    needs_service,
    render_configmap,
    render_job,
    render_service,
)
from kubesft_operator.settings import OperatorSettings

logger = logging.getLogger(__name__)

Key = tuple[str, str]
"""(namespace, SFTJob name)."""
JOB_SUSPEND_SINCE = (1, 22)
"""Job .spec.suspend is on by default from Kubernetes 1.22."""
_STATUS_FIELDS = frozenset(field.alias or name for name, field in SFTJobStatus.model_fields.items())


def _resource_version(body: dict[str, Any] | None) -> int:
    value = str((body or {}).get("metadata", {}).get("resourceVersion") or "")
    return int_or(value, -1)


def status_patch(old: dict[str, Any], new: SFTJobStatus) -> dict[str, Any]:
    """A merge patch that turns status ``old`` into ``new``: changed fields, and nulls for dropped ones."""
    before = SFTJobStatus.model_validate(old).model_dump(mode="json", by_alias=True, exclude_none=True)
    after = new.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {
        key: after.get(key)
        for key in sorted((set(before) | set(after)) & _STATUS_FIELDS)
        if before.get(key) != after.get(key)
    }


@dataclass(frozen=True)
class Observed:
    """What the watches show for one SFTJob."""

    sftjob: dict[str, Any] | None
    jobs: list[dict[str, Any]]
    pods: list[dict[str, Any]]


class Controller:
    """The operator's memory between events, and the only writer of SFTJob status."""

    def __init__(self, settings: OperatorSettings, kube: Kube, observe: Callable[[Key], Observed]) -> None:
        self.settings = settings
        self.kube = kube
        self.defaults = TrainerDefaults(settings.trainer_image, tuple(settings.trainer_image_pull_secrets))
        self.job_suspend_supported = False
        self._locks: defaultdict[Key, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._written: dict[Key, dict[str, Any]] = {}
        self._created: defaultdict[Key, dict[str, dict[str, Any]]] = defaultdict(dict)
        self._session: aiohttp.ClientSession | None = None
        self._observe = observe
        self._waiting: set[Key] = set()

    async def start(self) -> None:
        version = await self.kube.server_version()
        self.job_suspend_supported = version >= JOB_SUSPEND_SINCE
        self._session = aiohttp.ClientSession()
        logger.info(
            "API server %s.%s: suspending %s",
            *version,
            "with Job .spec.suspend" if self.job_suspend_supported else "by deleting the Job",
        )

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        await self.kube.close()

    def forget(self, key: Key) -> None:
        self._written.pop(key, None)
        self._created.pop(key, None)
        self._locks.pop(key, None)
        metrics.PHASE_COUNTS.set(*key, None)

    def observe(self, key: Key, phase: str | None) -> None:
        metrics.PHASE_COUNTS.set(*key, phase)

    def _freshest(self, key: Key, indexed: dict[str, Any] | None) -> dict[str, Any] | None:
        written = self._written.get(key)
        if indexed is None or written is None:
            return indexed
        return written if _resource_version(written) > _resource_version(indexed) else indexed

    def _jobs(self, key: Key, indexed: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Indexed Jobs plus those this operator created that the watch has not shown yet."""
        jobs = {job["metadata"]["name"]: job for job in indexed}
        created = self._created[key]
        for name in list(created):
            if name in jobs:
                del created[name]
            else:
                jobs[name] = created[name]
        return list(jobs.values())

    async def reconcile(self, key: Key) -> None:
        """Bring ``key`` in line with what the watches show now.

        Calls that arrive while one already waits for this SFTJob return at once: the waiting
        one reads the watches only when it runs, so it covers them.
        """
        if key in self._waiting:
            return
        self._waiting.add(key)
        async with self._locks[key]:
            self._waiting.discard(key)
            observed = self._observe(key)
            current = self._freshest(key, observed.sftjob)
            if current is None:
                return
            started = time.perf_counter()
            try:
                world = World(
                    SFTJobView.from_body(current),
                    self._jobs(key, observed.jobs),
                    observed.pods,
                    now_utc(),
                    self.job_suspend_supported,
                )
                decision = decide(world)
                await self._carry_out(key, current, decision)
            except Exception:
                metrics.RECONCILE_ERRORS.inc()
                raise
            finally:
                metrics.RECONCILE_DURATION.observe(time.perf_counter() - started)

    async def _carry_out(self, key: Key, body: dict[str, Any], decision: Decision) -> None:
        namespace, name = key
        owner = Owner(name=name, namespace=namespace, uid=body["metadata"]["uid"])
        for action in decision.actions:
            if isinstance(action, EnsureChildren):
                await self._ensure_children(key, owner, action)
            elif isinstance(action, DeleteJob):
                await self.kube.delete_job(namespace, action.name)
            elif isinstance(action, SuspendJob):
                await self.kube.patch_job(namespace, action.name, {"spec": {"suspend": action.suspend}})
            elif isinstance(action, SetJobDeadline):
                deadline = {"spec": {"activeDeadlineSeconds": action.seconds}}
                await self.kube.patch_job(namespace, action.name, deadline)
            elif isinstance(action, DeleteSFTJob):
                logger.info("deleting SFTJob %s/%s: ttlSecondsAfterFinished has passed", namespace, name)
                await self.kube.delete_sftjob(namespace, name)
                return
        if decision.annotations:
            body = await self._annotate(body, decision.annotations)
            self._written[key] = watched.keep_sftjob(body)
        old = SFTJobStatus.model_validate(body.get("status") or {})
        changes = status_patch(body.get("status") or {}, decision.status)
        if changes:
            body = await self.kube.patch_sftjob_status(namespace, name, changes)
            self._written[key] = watched.keep_sftjob(body)
            created_at = parse_time(body["metadata"].get("creationTimestamp"))
            metrics.record_transition(old, decision.status, created_at)
            self.observe(key, decision.status.phase)
        for note in decision.events:
            kopf.event(
                kopf.Body(cast(kopf.RawBody, body)),
                type=note.type,
                reason=note.reason,
                message=note.message[:1024],
            )
        if decision.requeue_after is not None:
            self._requeue(key, decision.requeue_after)

    async def _annotate(self, body: dict[str, Any], annotations: dict[str, str | None]) -> dict[str, Any]:
        meta = body["metadata"]
        return await self.kube.patch_sftjob(
            meta["namespace"], meta["name"], {"metadata": {"annotations": annotations}}
        )

    async def _ensure_children(self, key: Key, owner: Owner, action: EnsureChildren) -> None:
        children = [render_configmap(owner, action.spec)]
        if needs_service(action.spec):
            children.append(render_service(owner))
        job = render_job(owner, action.spec, action.attempt, self.defaults)
        for child in children:
            await self.kube.create_or_adopt(child)
        created, fresh = await self.kube.create_or_adopt(job)
        self._created[key][created["metadata"]["name"]] = watched.keep_job(created)
        if fresh:
            logger.info("created Job %s/%s", owner.namespace, created["metadata"]["name"])

    # -- time-driven work -----------------------------------------------------------------------

    def _requeue(self, key: Key, delay: float) -> None:
        async def later() -> None:
            await asyncio.sleep(delay)
            try:
                await self.reconcile(key)
            except Exception:
                logger.exception("reconciling %s/%s after %.0fs failed", *key, delay)

        asyncio.get_running_loop().create_task(later())

    async def poll_progress(self, key: Key) -> None:
        """Copy rank 0's /progress into status when its values changed."""
        observed = self._observe(key)
        pods = observed.pods
        current = self._freshest(key, observed.sftjob)
        if current is None or self._session is None:
            return
        status = current.get("status") or {}
        attempt = int(status.get("attempt") or 0)
        mine = [
            p for p in pods if (p["metadata"].get("labels") or {}).get(names.LABEL_ATTEMPT) == str(attempt)
        ]
        address = rank0_ip(mine)
        if address is None:
            return
        report = await fetch_progress(
            self._session, address, TRAINER_METRICS_PORT, self.settings.progress_timeout_seconds
        )
        if report is None:
            return
        async with self._locks[key]:
            current = self._freshest(key, self._observe(key).sftjob) or current
            status = current.get("status") or {}
            if status.get("phase") in ("Succeeded", "Failed") or int(status.get("attempt") or 0) != attempt:
                return
            patch = progress_patch(status, report)
            if patch:
                namespace, name = key
                written = await self.kube.patch_sftjob_status(namespace, name, patch)
                self._written[key] = watched.keep_sftjob(written)
