"""The controller: the status patch it writes, which copy of an SFTJob it reads, and its own loop."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable, Iterator
from typing import Any

import kopf
import pytest

from kubesft_api.progress import ProgressReport
from kubesft_api.status import SFTJobStatus
from kubesft_api.times import now_utc, rfc3339
from kubesft_operator import controller as controller_module
from kubesft_operator import watched
from kubesft_operator.controller import Controller, status_patch
from kubesft_operator.kube import ApiError, Kube, OwnershipConflictError
from kubesft_operator.objects import Job, Pod, SFTJob
from kubesft_operator.settings import OperatorSettings
from kubesft_operator.watched import Key, Watches
from tests.support.operator_objects import OWNER, job, pod, sftjob, spec_dict

KEY: Key = (OWNER.namespace, OWNER.name)


def test_status_patch_sends_only_changes_and_nulls_for_dropped_fields() -> None:
    old = {"phase": "Running", "etaText": "3m", "progressText": "1/4 (25%)", "restarts": 0, "kopf": {"x": 1}}
    new = SFTJobStatus(phase="Succeeded", progress_text="1/4 (25%)", restarts=0)
    assert status_patch(old, new) == {"phase": "Succeeded", "etaText": None}
    assert status_patch(new.model_dump(mode="json", by_alias=True, exclude_none=True), new) == {}


# --- a controller against an API server in memory ------------------------------------------------


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """JSON merge patch: nulls remove."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _versions() -> Iterator[str]:
    """Resource versions that are neither numbers nor in any order, as the API promises nothing more."""
    for n in range(1000):
        yield f"v{(n * 7919) % 1000:03d}x"


class MemoryKube(Kube):
    """The SFTJobs, and the writes to them, of an API server in memory."""

    def __init__(self, *bodies: SFTJob) -> None:
        super().__init__(connect=lambda: kopf.ConnectionInfo(server="http://unused"))
        self.objects: dict[str, dict[str, Any]] = {
            b["metadata"]["name"]: copy.deepcopy(dict(b)) for b in bodies
        }
        self.writes: list[tuple[str, dict[str, Any]]] = []
        self.children: list[str] = []
        self.deleted: list[str] = []
        self.failures = 0
        self.after_write: Callable[[dict[str, Any]], None] = lambda body: None
        self._versions = _versions()

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def server_version(self) -> tuple[int, int]:
        return (1, 20)

    async def _write(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        if self.failures:
            self.failures -= 1
            raise ApiError(500, "PATCH", name, "the API server is overloaded")
        self.writes.append((name, patch))
        body = self.objects[name]
        _merge(body, patch)
        body["metadata"]["resourceVersion"] = next(self._versions)
        self.after_write(copy.deepcopy(body))
        return copy.deepcopy(body)

    async def patch_sftjob(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return await self._write(name, patch)

    async def patch_sftjob_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        return await self._write(name, {"status": status})

    async def create_or_adopt(self, obj: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        self.children.append(f"{obj['kind']}/{obj['metadata']['name']}")
        return obj, True

    async def delete_job(self, namespace: str, name: str) -> None:
        self.deleted.append(f"Job/{name}")

    async def patch_job(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.writes.append((f"Job/{name}", patch))

    async def delete_sftjob(self, namespace: str, name: str) -> None:
        self.deleted.append(f"SFTJob/{name}")


class Cluster:
    """What the watches show: plain dicts in place of Kopf's indexes, fed by the test."""

    def __init__(self, *bodies: SFTJob, jobs: list[Job] | None = None, pods: list[Pod] | None = None) -> None:
        self.sftjobs: dict[Key, list[SFTJob]] = {}
        self.jobs: dict[Key, list[Job]] = {}
        self.pods: dict[Key, list[Pod]] = {}
        for body in bodies:
            key = (body["metadata"]["namespace"], body["metadata"]["name"])
            self.sftjobs[key] = [body]
            self.jobs[key] = list(jobs or [])
            self.pods[key] = list(pods or [])
        self.kube = MemoryKube(*bodies)

    def controller(self, interval: float = 3600.0) -> Controller:
        # Validation keeps the interval at a second or more; the tests run faster.
        settings = OperatorSettings.model_construct(progress_interval_seconds=interval)
        return Controller(settings, self.kube, Watches(self.sftjobs, self.jobs, self.pods))

    def show(self, controller: Controller, body: SFTJob, *, listed: bool = False) -> None:
        """The watch delivers ``body``: the index holds it, then the event handler sees it."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        self.sftjobs[key] = [body]
        controller.observe(key, body, listed=listed)

    def stored(self, name: str = OWNER.name) -> SFTJob:
        return watched.keep_sftjob(self.kube.objects[name])


def _with_version(body: SFTJob, version: str) -> SFTJob:
    body["metadata"]["resourceVersion"] = version
    return body


def _suspended(body: SFTJob, version: str) -> SFTJob:
    """``body`` as a user's edit that suspends it left it."""
    edited = copy.deepcopy(body)
    edited["spec"]["runPolicy"]["suspend"] = True
    edited["metadata"]["generation"] = 2
    return _with_version(edited, version)


@pytest.fixture(autouse=True)
def events(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Reasons of the Events the controller records, from its own loop as from handlers."""
    recorded: list[str] = []

    async def post_event(
        self: MemoryKube, sftjob: dict[str, Any], type_: str, reason: str, message: str
    ) -> None:
        recorded.append(reason)

    monkeypatch.setattr(MemoryKube, "post_event", post_event)
    return recorded


def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> Any:
    async def wait() -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            assert asyncio.get_running_loop().time() < deadline, "timed out"
            await asyncio.sleep(0.01)

    return wait()


# --- which copy of an SFTJob the controller reads ------------------------------------------------


def _new_sftjob() -> tuple[Cluster, Controller]:
    cluster = Cluster(_with_version(sftjob(), "first"))
    return cluster, cluster.controller()


async def _acts_on_a_suspension(cluster: Cluster, controller: Controller, version: str, **show: bool) -> bool:
    """Whether the controller acts on an edit of the written SFTJob, shown by the watch now."""
    cluster.show(controller, _suspended(cluster.stored(), version), **show)
    await controller.reconcile(KEY)
    return cluster.kube.deleted == [f"Job/{OWNER.name}-0"]


def test_the_written_copy_is_read_until_the_watch_shows_that_version(events: list[str]) -> None:
    cluster, controller = _new_sftjob()

    async def scenario() -> None:
        await controller.reconcile(KEY)
        assert [patch for _, patch in cluster.kube.writes][1]["status"]["phase"] == "Pending"
        assert events == ["JobCreated"]
        written = cluster.stored()
        # The watch still shows the SFTJob before the write, then an edit the write came after:
        # both are older than the write, so the write is what the controller reads.
        cluster.show(controller, _suspended(sftjob(), "edited"))
        await controller.reconcile(KEY)
        assert len(cluster.kube.writes) == 2 and events == ["JobCreated"] and cluster.kube.deleted == []
        # Once the watch shows the write, what it shows next is newer, and read.
        cluster.show(controller, written)
        assert await _acts_on_a_suspension(cluster, controller, "later")

    asyncio.run(scenario())


def test_a_listing_ends_the_written_copy() -> None:
    cluster, controller = _new_sftjob()

    async def scenario() -> None:
        await controller.reconcile(KEY)
        # A relisting may skip the written version: what it lists is read from then on.
        assert await _acts_on_a_suspension(cluster, controller, "relisted", listed=True)

    asyncio.run(scenario())


def test_a_write_the_watch_showed_before_it_returned_is_not_kept() -> None:
    cluster, controller = _new_sftjob()
    cluster.kube.after_write = lambda body: cluster.show(controller, watched.keep_sftjob(body))

    async def scenario() -> None:
        await controller.reconcile(KEY)
        cluster.kube.after_write = lambda body: None
        assert await _acts_on_a_suspension(cluster, controller, "later")

    asyncio.run(scenario())


# --- the controller's loop ---------------------------------------------------------------------


def _other_tasks() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]


def test_the_loop_reads_progress_and_reconciles_every_sftjob_each_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps = iter(range(1, 1000))

    async def progress(*_: Any) -> ProgressReport:
        return ProgressReport(step=next(steps), total_steps=1000)

    monkeypatch.setattr(controller_module, "fetch_progress", progress)
    bodies = [_with_version(sftjob(name=name), "first") for name in ("chat", "other")]
    cluster = Cluster(*bodies, jobs=[job(0)], pods=[pod(0)])
    controller = cluster.controller(interval=0.05)

    def progress_writes(name: str) -> int:
        return sum(
            1
            for written, patch in cluster.kube.writes
            if written == name and "progress" in patch.get("status", {})
        )

    async def scenario() -> None:
        await controller.start()
        await _wait_for(lambda: progress_writes("chat") >= 2 and progress_writes("other") >= 2)
        assert cluster.stored("other")["status"]["phase"] == "Running"
        await asyncio.wait_for(controller.stop(), timeout=5)
        assert _other_tasks() == [], "the loop outlived stop()"

    asyncio.run(scenario())


def test_the_sweep_leaves_finished_sftjobs_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    reconciled: list[str] = []
    done = _with_version(sftjob(name="done", status={"phase": "Succeeded"}), "first")
    failed = _with_version(sftjob(name="failed", status={"phase": "Failed"}), "first")
    cluster = Cluster(_with_version(sftjob(name="chat"), "first"), done, failed)
    controller = cluster.controller(interval=0.05)

    async def counted(key: Key) -> None:
        reconciled.append(key[1])

    monkeypatch.setattr(controller, "reconcile", counted)

    async def scenario() -> None:
        await controller.start()
        await _wait_for(lambda: reconciled.count("chat") >= 3)
        await controller.stop()

    asyncio.run(scenario())
    assert set(reconciled) == {"chat"}


def test_a_failing_reconcile_is_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    cluster = Cluster(_with_version(sftjob(), "first"))
    cluster.kube.failures = 2
    controller = cluster.controller(interval=0.05)

    async def scenario() -> None:
        await controller.start()
        await _wait_for(lambda: cluster.stored()["status"].get("phase") == "Pending")
        await controller.stop()

    with caplog.at_level(logging.ERROR, logger=controller_module.__name__):
        asyncio.run(scenario())
    failures = [r for r in caplog.records if "overloaded" in str(r.exc_info and r.exc_info[1])]
    assert len(failures) == 2, caplog.text


def test_a_requeue_runs_when_it_is_due_between_sweeps() -> None:
    # Five seconds of TTL left: room for a loaded machine between writing the status and the
    # first reconcile, which must find the TTL not yet passed and ask for a requeue.
    finished = rfc3339(now_utc())
    body = sftjob(spec_dict(ttlSecondsAfterFinished=5), {"phase": "Succeeded", "completionTime": finished})
    cluster = Cluster(_with_version(body, "first"))
    controller = cluster.controller(interval=3600.0)

    async def scenario() -> None:
        await controller.start()
        await asyncio.sleep(0.05)  # the loop sleeps until the next sweep, an hour away
        await controller.reconcile(KEY)
        assert cluster.kube.deleted == [], "the TTL has seconds left"
        await _wait_for(lambda: cluster.kube.deleted == [f"SFTJob/{OWNER.name}"], timeout=20)
        await controller.stop()

    asyncio.run(scenario())


# --- what the controller trusts ------------------------------------------------------------------


def _forged(pod_body: Pod) -> Pod:
    """``pod_body`` as someone who copied its labels made it: no Job owns it."""
    forged = copy.deepcopy(pod_body)
    del forged["metadata"]["ownerReferences"]
    return forged


def test_pods_and_jobs_with_copied_labels_are_not_the_sftjobs() -> None:
    """A finished pod with the job's labels would otherwise have finished the job."""
    stranger = copy.deepcopy(job(0))
    stranger["metadata"]["ownerReferences"] = [{"kind": "SFTJob", "uid": "uid-other", "controller": True}]
    body = _with_version(sftjob(), "first")
    cluster = Cluster(body, jobs=[job(0)], pods=[pod(0), _forged(pod(0, "Succeeded", exit_code=0))])
    controller = cluster.controller()
    asyncio.run(controller.reconcile(KEY))
    assert cluster.stored()["status"]["phase"] == "Running"
    # Only a Job of its own counts: with a stranger's Job alone, the SFTJob starts its own.
    lone = Cluster(_with_version(sftjob(), "first"), jobs=[stranger], pods=[pod(0)])
    asyncio.run(lone.controller().reconcile(KEY))
    assert lone.kube.children[-1] == f"Job/{OWNER.name}-0"


def test_progress_is_read_only_from_the_jobs_own_pods(monkeypatch: pytest.MonkeyPatch) -> None:
    read: list[str] = []

    async def progress(session: Any, address: str, *_: Any) -> ProgressReport:
        read.append(address)
        return ProgressReport(step=999)

    monkeypatch.setattr(controller_module, "fetch_progress", progress)
    body = _with_version(sftjob(), "first")
    cluster = Cluster(body, jobs=[job(0)], pods=[_forged(pod(0, ip="10.9.9.9"))])
    controller = cluster.controller()

    async def scenario() -> None:
        await controller.start()
        await controller.poll_progress(KEY)
        cluster.pods[KEY] = [pod(0, ip="10.1.0.5")]
        await controller.poll_progress(KEY)
        await controller.stop()

    asyncio.run(scenario())
    assert read == ["10.1.0.5"]


def test_a_start_the_checks_refuse_fails_the_job_and_creates_nothing() -> None:
    body = sftjob()
    body["spec"]["resources"] = {"image": "docker.io/evil/miner:1"}
    cluster = Cluster(_with_version(body, "first"))
    asyncio.run(cluster.controller().reconcile(KEY))
    assert cluster.kube.children == []
    status = cluster.stored()["status"]
    assert status["phase"] == "Failed"
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "PolicyViolation" and "policy.allowedImages" in failed["message"]


def test_a_child_owned_by_someone_else_fails_the_start_by_name_and_no_job_is_created(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = Cluster(sftjob())
    created = cluster.kube.create_or_adopt

    async def conflict(obj: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        if obj["kind"] == "ConfigMap":
            raise OwnershipConflictError(
                f"ConfigMap {obj['metadata']['name']} exists and is not owned by this SFTJob"
            )
        return await created(obj)

    monkeypatch.setattr(cluster.kube, "create_or_adopt", conflict)
    with pytest.raises(OwnershipConflictError, match=r"ConfigMap .* is not owned by this SFTJob"):
        asyncio.run(cluster.controller().reconcile(KEY))
    assert not any(child.startswith("Job/") for child in cluster.kube.children)


def test_each_start_creates_the_network_policy_before_the_pods() -> None:
    cluster = Cluster(_with_version(sftjob(), "first"))
    asyncio.run(cluster.controller().reconcile(KEY))
    assert cluster.kube.children == ["NetworkPolicy/chat-trainers", "ConfigMap/chat-config", "Job/chat-0"]
    off = Cluster(_with_version(sftjob(), "first"))
    settings = OperatorSettings.model_construct(network_policy_enabled=False)
    asyncio.run(Controller(settings, off.kube, Watches(off.sftjobs, off.jobs, off.pods)).reconcile(KEY))
    assert off.kube.children == ["ConfigMap/chat-config", "Job/chat-0"]
