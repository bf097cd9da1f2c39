"""Carries out the state machine's decisions against the API server, one SFTJob at a time.

The Kopf handlers hand it what the watches show (Kopf's in-memory indexes); it decides, acts,
writes the status and records events. Reconciliations of one SFTJob never overlap. Its own loop
(``run``) reads progress and reconciles every SFTJob once per progress interval, so time-driven
transitions (deadline, TTL) and anything a lost event missed still happen, and it runs the
reconciliations the state machine asked for at a later time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, cast

import aiohttp

from kubesft_api.pod_contract import TRAINER_METRICS_PORT
from kubesft_api.sftjob import SFTJobSpec
from kubesft_api.status import SFTJobStatus
from kubesft_api.times import now_utc, parse_time
from kubesft_operator import authorization, metrics, watched
from kubesft_operator.attempts import rank0_ip
from kubesft_operator.decisions import (
    Decision,
    DeleteJob,
    DeleteSFTJob,
    EnsureChildren,
    JobSpecChange,
    RunValidation,
    SFTJobView,
    StartAction,
    World,
)
from kubesft_operator.kube import ApiError, Kube
from kubesft_operator.lifecycle import TERMINAL, decide
from kubesft_operator.network_policy import network_policy_settings, render_network_policy
from kubesft_operator.objects import Job, Pod, SFTJob, owned_jobs, owned_pods, pod_attempt
from kubesft_operator.progress import fetch_progress, progress_patch
from kubesft_operator.queueing import workload_wanted
from kubesft_operator.render import (
    Owner,
    TrainerDefaults,
    needs_service,
    render_configmap,
    render_job,
    render_service,
    render_validation_job,
)
from kubesft_operator.settings import OperatorSettings
from kubesft_operator.start_checks import StartChecks
from kubesft_operator.watched import Key, Observed, Watches

logger = logging.getLogger(__name__)

JOB_SUSPEND_SINCE = (1, 22)
"""Job .spec.suspend is on by default from Kubernetes 1.22."""
SWEEP_CONCURRENCY = 64
"""SFTJobs read and reconciled at once by the periodic sweep; API calls are pooled in ``Kube``."""
_SEEN_VERSIONS = 8
"""Resource versions of an SFTJob's recent watch events remembered, to recognise the operator's own
writes among them."""
_STATUS_FIELDS = frozenset(field.alias or name for name, field in SFTJobStatus.model_fields.items())


def status_patch(old: Mapping[str, Any], new: SFTJobStatus) -> dict[str, Any]:
    """A merge patch that turns status ``old`` into ``new``: changed fields, and nulls for dropped ones."""
    before = SFTJobStatus.model_validate(old).model_dump(mode="json", by_alias=True, exclude_none=True)
    after = new.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {
        key: after.get(key)
        for key in sorted((set(before) | set(after)) & _STATUS_FIELDS)
        if before.get(key) != after.get(key)
    }


class Controller:
    """The operator's memory between events, and the only writer of SFTJob status.

    After a write it reads the SFTJob as the write returned it, until the watch has shown that
    write: resource versions are opaque, so one can only tell that the watch has reached a
    version, never that one copy is newer than another.
    """

    def __init__(
        self,
        settings: OperatorSettings,
        kube: Kube,
        watches: Watches,
        review: authorization.Review | None = None,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.watches = watches
        self.defaults = TrainerDefaults(settings.trainer_image, tuple(settings.trainer_image_pull_secrets))
        self.signer = settings.signer
        self.checks = StartChecks(
            settings.policy, review or kube.review_access, self.signer, settings.admission_records_required
        )
        self.network_policy = network_policy_settings(settings)
        self.job_suspend_supported = False
        self._locks: defaultdict[Key, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._written: dict[Key, SFTJob] = {}
        self._seen: defaultdict[Key, deque[str]] = defaultdict(lambda: deque(maxlen=_SEEN_VERSIONS))
        self._created: defaultdict[Key, dict[str, Job]] = defaultdict(dict)
        self._session: aiohttp.ClientSession | None = None
        self._workload_warned = False
        self._waiting: set[Key] = set()
        self._due: dict[Key, float] = {}
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        version = await self.kube.server_version()
        self.job_suspend_supported = version >= JOB_SUSPEND_SINCE
        # Undecompressed: a pod's compressed body could expand far past the size read.
        self._session = aiohttp.ClientSession(auto_decompress=False)
        logger.info(
            "API server %s.%s: suspending %s",
            *version,
            "with Job .spec.suspend" if self.job_suspend_supported else "by deleting the Job",
        )
        self._loop = asyncio.create_task(self.run(self.settings.progress_interval_seconds), name="sweep")

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        if self._session is not None:
            await self._session.close()
        await self.kube.close()

    def forget(self, key: Key) -> None:
        for memory in (self._written, self._seen, self._created, self._locks, self._due):
            memory.pop(key, None)
        metrics.PHASE_COUNTS.set(*key, None)

    def observe(self, key: Key, body: SFTJob, *, listed: bool = False) -> None:
        """Take note of a watch event of an SFTJob; ``listed`` for one from a fresh listing."""
        metrics.PHASE_COUNTS.set(*key, body["status"].get("phase"))
        version = body["metadata"].get("resourceVersion", "")
        self._seen[key].append(version)
        written = self._written.get(key)
        # A listing may have skipped the version written; the watch then goes on from the listing.
        if written is not None and (listed or written["metadata"].get("resourceVersion") == version):
            del self._written[key]

    def _remember_written(self, key: Key, body: dict[str, Any]) -> SFTJob:
        """Keep what a write returned, unless the watch has shown that version already."""
        kept = watched.keep_sftjob(body)
        if kept["metadata"].get("resourceVersion", "") in self._seen[key]:
            self._written.pop(key, None)
        else:
            self._written[key] = kept
        return kept

    def _current(self, key: Key, indexed: SFTJob | None) -> SFTJob | None:
        """The SFTJob as the operator last wrote it until the watch shows that, else as watched."""
        written = self._written.get(key)
        return written if written is not None and indexed is not None else indexed

    def _owned(self, key: Key, body: SFTJob, observed: Observed) -> tuple[list[Job], list[Pod]]:
        """The SFTJob's own Jobs and their Pods, by owner reference: labels can be copied."""
        jobs = owned_jobs(self._jobs(key, observed.jobs), body["metadata"].get("uid", ""))
        return jobs, owned_pods(observed.pods, jobs)

    def _jobs(self, key: Key, indexed: Iterable[Job]) -> list[Job]:
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
            observed = self.watches.observed(key)
            current = self._current(key, observed.sftjob)
            if current is None:
                return
            started = time.perf_counter()
            try:
                jobs, pods = self._owned(key, current, observed)
                view = SFTJobView.from_body(current)
                world = World(view, jobs, pods, now_utc(), self.job_suspend_supported, self.signer)
                world = await self._with_workload(world)
                decision = await self._checked(current, world, decide(world))
                await self._carry_out(key, current, decision)
                if decision.queue_wait is not None:
                    metrics.QUEUE_WAIT.observe(decision.queue_wait)
            except Exception:
                metrics.RECONCILE_ERRORS.inc()
                raise
            finally:
                metrics.RECONCILE_DURATION.observe(time.perf_counter() - started)

    async def _with_workload(self, world: World) -> World:
        """``world`` with Kueue's Workload of the current Job, when the decision needs it."""
        spec, status = world.sftjob.spec, world.sftjob.status
        current = [j for j in world.jobs if j["metadata"]["name"] == status.get("jobName")]
        suspended = bool(current[0]["spec"].get("suspend")) if current else None
        queue = (spec.get("runPolicy") or {}).get("queueName")
        if not current or not workload_wanted(queue, status.get("queue"), suspended):
            return world
        try:
            workload = await self.kube.job_workload(
                world.sftjob.namespace, current[0]["metadata"].get("uid", "")
            )
        except ApiError as err:
            if err.status not in (403, 404):
                raise
            if not self._workload_warned:
                self._workload_warned = True
                logger.warning("cannot read Kueue Workloads (%s): queued jobs show no Kueue detail", err)
            return world
        return replace(world, workload=workload, workload_looked_up=True)

    async def _checked(self, body: SFTJob, world: World, decision: Decision) -> Decision:
        """``decision``, or, when it starts an attempt the checks refuse, the decision to fail."""
        start = next((a for a in decision.actions if isinstance(a, StartAction)), None)
        if start is None:
            return decision
        refusal = await self.checks.refusal(body, decision, start.spec)
        if refusal is None:
            return decision
        meta = body["metadata"]
        logger.warning("not starting SFTJob %s/%s: %s", meta.get("namespace"), meta["name"], refusal.message)
        return decide(replace(world, refusal=refusal))

    async def _carry_out(self, key: Key, body: SFTJob, decision: Decision) -> None:
        namespace, name = key
        owner = Owner(name=name, namespace=namespace, uid=body["metadata"]["uid"])
        for action in decision.actions:
            if isinstance(action, EnsureChildren):
                await self._ensure_children(key, owner, action)
            elif isinstance(action, RunValidation):
                await self._run_validation(key, owner, action)
            elif isinstance(action, DeleteJob):
                await self.kube.delete_job(namespace, action.name)
            elif isinstance(action, JobSpecChange):
                await self.kube.patch_job(namespace, action.name, {"spec": action.spec_patch()})
            elif isinstance(action, DeleteSFTJob):
                logger.info("deleting SFTJob %s/%s: ttlSecondsAfterFinished has passed", namespace, name)
                await self.kube.delete_sftjob(namespace, name)
                return
        if decision.annotations:
            patch = {"metadata": {"annotations": decision.annotations}}
            body = self._remember_written(key, await self.kube.patch_sftjob(namespace, name, patch))
        old = SFTJobStatus.model_validate(body["status"])
        changes = status_patch(body["status"], decision.status)
        if changes:
            body = self._remember_written(key, await self.kube.patch_sftjob_status(namespace, name, changes))
            created_at = parse_time(body["metadata"].get("creationTimestamp"))
            metrics.record_transition(old, decision.status, created_at)
            metrics.PHASE_COUNTS.set(*key, decision.status.phase)
        for note in decision.events:
            try:
                await self.kube.post_event(cast(dict[str, Any], body), note.type, note.reason, note.message)
            except (ApiError, aiohttp.ClientError) as err:
                # An event is a courtesy: the status already says what it says.
                logger.warning("could not record event %s on %s/%s: %s", note.reason, namespace, name, err)
        if decision.requeue_after is not None:
            self._requeue(key, decision.requeue_after)

    async def _ensure_children(self, key: Key, owner: Owner, action: EnsureChildren) -> None:
        children = self._pod_inputs(owner, action.spec)
        if needs_service(action.spec):
            children.append(render_service(owner))
        await self._create_all(children)
        await self._create_job(key, owner, render_job(owner, action.spec, action.attempt, self.defaults))

    async def _run_validation(self, key: Key, owner: Owner, action: RunValidation) -> None:
        await self._create_all(self._pod_inputs(owner, action.spec))
        await self._create_job(
            key, owner, render_validation_job(owner, action.spec, action.digest, self.defaults)
        )

    async def _create_all(self, children: list[dict[str, Any]]) -> None:
        """The objects the Job's pods need, at once; a failure is raised as itself, naming its object."""
        results = await asyncio.gather(*map(self.kube.create_or_adopt, children), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _pod_inputs(self, owner: Owner, spec: SFTJobSpec) -> list[dict[str, Any]]:
        """The NetworkPolicy (if enabled) and the ConfigMap every pod of the job needs."""
        children = [render_configmap(owner, spec)]
        if self.network_policy is not None:
            # Created before the Job, so that the pods are covered from the moment they exist.
            children.insert(0, render_network_policy(owner, spec, self.network_policy))
        return children

    async def _create_job(self, key: Key, owner: Owner, job: dict[str, Any]) -> None:
        created, fresh = await self.kube.create_or_adopt(job)
        self._created[key][created["metadata"]["name"]] = watched.keep_job(created)
        if fresh:
            logger.info("created Job %s/%s", owner.namespace, created["metadata"]["name"])

    # -- time-driven work -----------------------------------------------------------------------

    def _requeue(self, key: Key, delay: float) -> None:
        due = time.monotonic() + delay
        if due < self._due.get(key, math.inf):
            self._due[key] = due
            self._wake.set()

    async def run(self, interval: float) -> None:
        """Every ``interval`` seconds read progress and reconcile every SFTJob; in between, reconcile
        the SFTJobs whose requeue is due. Runs until cancelled; a failure is logged, never fatal."""
        next_sweep = time.monotonic() + interval
        while True:
            now = time.monotonic()
            due = [key for key, at in self._due.items() if at <= now]
            for key in due:
                del self._due[key]
            if now >= next_sweep:
                next_sweep = max(next_sweep + interval, now)
                await self._each(self._unfinished(), self._resync)
            await self._each(due, self.reconcile)
            wake_at = min([next_sweep, *self._due.values()])
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, wake_at - time.monotonic()))

    def _unfinished(self) -> list[Key]:
        """The SFTJobs the sweep covers: not Succeeded or Failed. Nothing changes a finished job
        but an event (an edit, a deletion), and its one timed step, the TTL, is a requeue; swept,
        thousands of finished jobs would hold up the reconciles that start new ones."""
        keys = self.watches.keys()
        bodies = {key: self._current(key, self.watches.observed(key).sftjob) for key in keys}
        return [
            key
            for key, body in bodies.items()
            if body is not None and body["status"].get("phase") not in TERMINAL
        ]

    async def _resync(self, key: Key) -> None:
        await self.poll_progress(key)
        await self.reconcile(key)

    async def _each(self, keys: Iterable[Key], work: Callable[[Key], Awaitable[None]]) -> None:
        """``work`` on every key, ``SWEEP_CONCURRENCY`` at a time."""
        slots = asyncio.Semaphore(SWEEP_CONCURRENCY)

        async def one(key: Key) -> None:
            async with slots:
                try:
                    await work(key)
                except Exception:
                    logger.exception("reconciling SFTJob %s/%s failed; it is tried again", *key)

        async with asyncio.TaskGroup() as group:
            for key in keys:
                group.create_task(one(key))

    async def poll_progress(self, key: Key) -> None:
        """Copy rank 0's /progress into status when its values changed."""
        observed = self.watches.observed(key)
        current = self._current(key, observed.sftjob)
        if current is None or self._session is None:
            return
        attempt = int(current["status"].get("attempt") or 0)
        _, pods = self._owned(key, current, observed)
        address = rank0_ip(p for p in pods if pod_attempt(p) == attempt)
        if address is None:
            return
        report = await fetch_progress(
            self._session, address, TRAINER_METRICS_PORT, self.settings.progress_timeout_seconds
        )
        if report is None:
            return
        async with self._locks[key]:
            current = self._current(key, self.watches.observed(key).sftjob) or current
            status = current["status"]
            if status.get("phase") in ("Succeeded", "Failed") or int(status.get("attempt") or 0) != attempt:
                return
            patch = progress_patch(status, report)
            if patch:
                namespace, name = key
                self._remember_written(key, await self.kube.patch_sftjob_status(namespace, name, patch))
