"""The process node: a stand-in for the kubelet (and the scheduler's binding step).

It registers one Node, binds every pending Pod to it, and runs each pod's containers as local
processes in a sandbox (network namespace on the node's bridge, private mounts for volumes),
writing Pod status as a kubelet would. A single worker thread owns all pods; two watch threads
feed it Pod and Service changes.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from kubernetes import client

from testing.devcluster import pod_status
from testing.devcluster.api_watch import RawWatch
from testing.devcluster.cgroups import CgroupTree
from testing.devcluster.container_logs import log_text
from testing.devcluster.kube import wait_until
from testing.devcluster.kubelet_server import KubeletServer, KubeletTls
from testing.devcluster.network import PodNetwork
from testing.devcluster.node_api import NodeApi, node_allocatable
from testing.devcluster.node_options import NodeOptions
from testing.devcluster.pod_hosts import refresh_hosts_files
from testing.devcluster.pod_runtime import PodRuntime, RuntimeSettings
from testing.devcluster.processes import wait_pids_gone
from testing.devcluster.run_state import RunState

log = logging.getLogger("devcluster.node")


class NodeError(RuntimeError):
    """A test-API call on the node failed."""


class ProcessNode:
    def __init__(
        self,
        api: client.ApiClient,
        state: RunState,
        options: NodeOptions | None = None,
        kubelet_tls: KubeletTls | None = None,
    ) -> None:
        self.options = options or NodeOptions()
        self.kubelet_tls = kubelet_tls
        self.kubelet: KubeletServer | None = None
        self.name = self.options.name
        self.state = state
        self.directory = state.directory / "node"
        self.core = client.CoreV1Api(api)
        self._api_client = api
        self.api = NodeApi(self.core, self.name)
        self.network: PodNetwork | None = None
        self.cgroups = CgroupTree(state.run_id)
        if self.cgroups.path is not None:
            state.remember("cgroups", str(self.cgroups.path))
        self.pods: dict[str, PodRuntime] = {}  # by uid, worker thread only
        self._pod_dirs: dict[tuple[str, str], Path] = {}
        self._bound: set[str] = set()
        self._unwritten: set[str] = set()  # pods whose last status the API server has not taken
        self._status_retry_at = 0.0
        self._services: dict[tuple[str, str], Any] = {}
        self._hosts_dirty = True
        self._failed = False
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stopping = threading.Event()
        self._worker = threading.Thread(target=self._work, name="devcluster-node", daemon=True)
        self._watches: list[RawWatch] = []
        self.errors: list[str] = []

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if os.geteuid() != 0:
            raise NodeError("the process node needs root: it creates network namespaces, mounts and cgroups")
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.options.pod_network:
            self.network = PodNetwork(self.state)
        if self.kubelet_tls is not None:
            self.kubelet = KubeletServer.for_node(
                self._api_client,
                self.name,
                self.host_ip,
                self.kubelet_tls,
                lambda ns, pod: self._pod_dirs.get((ns, pod)),
            )
        self._register()
        self._worker.start()
        self._watches = [
            self._watch("pod", self.core.list_pod_for_all_namespaces),
            self._watch("service", self.core.list_service_for_all_namespaces),
        ]
        for watch in self._watches:
            watch.start()

    def _watch(self, kind: str, list_all: Callable[..., Any]) -> RawWatch:
        """A watch that hands ``kind`` events (and relists, as ``<kind>-list``) to the worker."""
        return RawWatch(
            list_all,
            lambda items: self._inbox.put((f"{kind}-list", items)),
            lambda event, obj: self._inbox.put((kind, (event, obj))),
            self._record_error,
        )

    def stop(self) -> None:
        """Kill every pod process, then remove namespaces, the bridge and cgroups."""
        for watch in self._watches:
            watch.stop()
        if self.kubelet is not None:
            self.kubelet.stop()
        if self._worker.is_alive():
            self._call(self._stop_all_pods, timeout=30)
            self._stopping.set()
            self._worker.join(timeout=10)
        if self.network is not None:
            self.network.close()
        if self.cgroups.path is not None:
            self.cgroups.remove()
            self.state.forget("cgroups", str(self.cgroups.path))

    def _record_error(self, err: Exception) -> None:
        message = f"{type(err).__name__}: {err}"
        self.errors.append(message)
        log.warning("process node: %s", message)

    @property
    def host_ip(self) -> str:
        return self.network.gateway if self.network else "127.0.0.1"

    def _register(self) -> None:
        self.allocatable = {**node_allocatable(), **self.options.extended_resources}
        self.api.register(unschedulable=self.options.cordoned)
        self._write_node_status(ready=True)

    def _write_node_status(
        self, ready: bool, reason: str = "KubeletReady", message: str = "process node is ready"
    ) -> None:
        port = self.kubelet.port if self.kubelet is not None else None
        self.api.write_node_status(self.allocatable, self.host_ip, port, ready, reason, message)

    @property
    def settings(self) -> RuntimeSettings:
        return self.options.runtime_settings(self.host_ip, self.allocatable)

    # -- test API (any thread) -----------------------------------------------------------------

    def _call(self, function: Callable[[], Any], timeout: float = 60) -> Any:
        future: Future[Any] = Future()
        self._inbox.put(("call", (function, future)))
        return future.result(timeout=timeout)

    def _runtime(self, namespace: str, name: str) -> PodRuntime:
        for runtime in self.pods.values():
            if runtime.key == (namespace, name):
                return runtime
        raise NodeError(f"pod {namespace}/{name} does not run on node {self.name}")

    def preempt_pod(
        self,
        namespace: str,
        name: str,
        *,
        reason: str = "Preempted",
        message: str | None = None,
        grace_seconds: float | None = None,
    ) -> None:
        """End a running pod as Failed with ``reason``: SIGKILL at once, or SIGTERM and SIGKILL
        after ``grace_seconds``. The pod object stays (unlike a deletion)."""
        text = message or f"pod {namespace}/{name} was preempted by the test harness"

        def preempt() -> None:
            self._runtime(namespace, name).fail(reason, text, grace_seconds)

        self._call(preempt)

    def fail_node(self, reason: str = "NodeLost", message: str | None = None) -> None:
        """The node dies: Ready=Unknown, every pod process is SIGKILLed and its pod marked Failed.
        No pod is bound or started until ``recover_node()``."""
        text = message or f"Node {self.name} which was running the pod is unresponsive"

        def fail() -> None:
            self._failed = True
            for runtime in self.pods.values():
                if not runtime.finished():
                    runtime.fail(reason, text)
            self._write_node_status(
                ready=False, reason="NodeStatusUnknown", message="Kubelet stopped posting node status."
            )

        self._call(fail)

    def recover_node(self) -> None:
        def recover() -> None:
            self._failed = False
            self._write_node_status(ready=True)
            self._inbox.put(("relist", None))

        self._call(recover)

    def pod_pids(self, namespace: str, name: str) -> list[int]:
        """PIDs of every process of the pod now (empty once it ended)."""
        return list(self._call(lambda: self._runtime(namespace, name).pids()))

    def pod_directory(self, namespace: str, name: str) -> Path:
        try:
            return self._pod_dirs[(namespace, name)]
        except KeyError:
            raise NodeError(f"pod {namespace}/{name} never ran on node {self.name}") from None

    def logs(self, namespace: str, name: str, container: str | None = None, *, previous: bool = False) -> str:
        """A container's output as `kubectl logs [--previous]` gives it, also after the pod is gone."""
        try:
            return log_text(self.pod_directory(namespace, name), container, previous=previous)
        except LookupError as err:
            raise NodeError(f"pod {namespace}/{name}: {err.args[0]}") from None

    def wait_for_log(
        self, namespace: str, name: str, text: str, *, container: str | None = None, timeout: float = 60.0
    ) -> str:
        """Wait until the container's log contains ``text``; returns the log."""

        def read() -> str:
            try:
                return self.logs(namespace, name, container)
            except (NodeError, FileNotFoundError):
                return ""

        return wait_until(
            lambda: read() if text in read() else None,
            timeout=timeout,
            describe=lambda: f"log of pod {namespace}/{name} never showed {text!r}; it holds:\n{read()}",
        )

    def claim_directory(self, namespace: str, claim: str) -> Path:
        """The host directory bind-mounted wherever a pod mounts PVC ``namespace/claim`` (tests fill it)."""
        path = self.directory / "claims" / namespace / claim
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)
        return path

    # -- worker thread -------------------------------------------------------------------------

    def _work(self) -> None:
        next_hosts_refresh = 0.0
        while not self._stopping.is_set():
            try:
                kind, payload = self._inbox.get(timeout=0.1)
                self._handle(kind, payload)
                while True:
                    kind, payload = self._inbox.get_nowait()
                    self._handle(kind, payload)
            except queue.Empty:
                pass
            except Exception as err:
                self._record_error(err)
            self._step_all()
            if self._hosts_dirty or time.monotonic() > next_hosts_refresh:
                self._refresh_hosts()
                next_hosts_refresh = time.monotonic() + 2.0

    def _handle(self, kind: str, payload: Any) -> None:
        if kind == "call":
            function, future = payload
            try:
                future.set_result(function())
            except Exception as err:
                future.set_exception(err)
        elif kind == "pod":
            event, pod = payload
            self._on_pod(event, pod)
        elif kind == "pod-list":
            listed = {p["metadata"]["uid"] for p in payload}
            for uid in [uid for uid in self.pods if uid not in listed]:
                self._forget(self.pods[uid])
            for pod in payload:
                self._on_pod("ADDED", pod)
        elif kind == "relist":
            for pod in self.api.list_pods():
                self._on_pod("MODIFIED", pod)
        elif kind == "service-list":
            self._services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in payload}
            self._hosts_dirty = True
        elif kind == "service":
            event, svc = payload
            key = (svc["metadata"]["namespace"], svc["metadata"]["name"])
            if event == "DELETED":
                self._services.pop(key, None)
            else:
                self._services[key] = svc
            self._hosts_dirty = True

    def _on_pod(self, event: str, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        uid = meta["uid"]
        runtime = self.pods.get(uid)
        if event == "DELETED":
            if runtime is not None:
                self._forget(runtime)
            return
        node_name = spec.get("nodeName")
        if not node_name:
            self._bind(pod)
            return
        if node_name != self.name:
            return
        phase = (pod.get("status") or {}).get("phase")
        if runtime is None:
            if phase in ("Succeeded", "Failed") or self._failed:
                if meta.get("deletionTimestamp"):
                    self.api.delete_now(meta["namespace"], meta["name"], uid)
                return
            runtime = self._admit(pod)
        runtime.pod = pod
        if meta.get("deletionTimestamp") and not runtime.terminating:
            grace = meta.get("deletionGracePeriodSeconds")
            if grace is None:
                grace = spec.get("terminationGracePeriodSeconds", 30)
            runtime.begin_termination(float(grace))

    def _bind(self, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        if self._failed or meta.get("deletionTimestamp") or meta["uid"] in self._bound:
            return
        if spec.get("schedulerName", "default-scheduler") != "default-scheduler":
            return
        (self.api.mark_unschedulable if self.options.cordoned else self.api.bind)(meta)
        self._bound.add(meta["uid"])

    def _admit(self, pod: dict[str, Any]) -> PodRuntime:
        meta = pod["metadata"]
        pod_dir = self.directory / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"
        runtime = PodRuntime(pod, pod_dir, self.settings, self.state, self.cgroups)
        self.pods[runtime.uid] = runtime
        self._pod_dirs[runtime.key] = pod_dir
        self._hosts_dirty = True
        return runtime

    def _step_all(self) -> None:
        for runtime in list(self.pods.values()):
            unwritten = runtime.uid in self._unwritten and time.monotonic() >= self._status_retry_at
            if runtime.cleaned and not runtime.terminating and not unwritten:
                continue  # ended, reported and not being deleted: nothing can change
            try:
                had_address = runtime.address
                changed = runtime.step(self.api.read_object, self.claim_directory, self.network)
                if runtime.address != had_address:
                    self._refresh_hosts()
                if changed or unwritten:
                    self._write_status(runtime)
                deleted = runtime.pod["metadata"].get("deletionTimestamp")
                if runtime.terminating and runtime.finished() and deleted:
                    self._write_status(runtime)
                    self.api.delete_now(runtime.namespace, runtime.name, runtime.uid)
                    self._forget(runtime)
                elif runtime.finished() and not runtime.cleaned:
                    runtime.cleanup(self.network)
                    self._hosts_dirty = True
            except Exception as err:
                self._record_error(err)

    def _write_status(self, runtime: PodRuntime) -> None:
        # As the kubelet's status manager does, a status the API server did not take (it was down)
        # is sent again later until it lands: a pod that ends during an outage must not stay Running.
        self._unwritten.add(runtime.uid)
        self._status_retry_at = time.monotonic() + 1.0
        self.api.write_pod_status(runtime.namespace, runtime.name, runtime.uid, pod_status.status_of(runtime))
        self._unwritten.discard(runtime.uid)

    def _forget(self, runtime: PodRuntime) -> None:
        runtime.cleanup(self.network)
        self.pods.pop(runtime.uid, None)
        self._bound.discard(runtime.uid)
        self._unwritten.discard(runtime.uid)
        self._hosts_dirty = True

    def _refresh_hosts(self) -> None:
        self._hosts_dirty = False
        refresh_hosts_files(self.pods.values(), self._services.values())

    def _stop_all_pods(self) -> None:
        pids: list[int] = []
        for runtime in self.pods.values():
            pids += runtime.pids()
            runtime.kill(signal.SIGKILL)
        wait_pids_gone(pids, 10.0)
        for runtime in list(self.pods.values()):
            runtime.cleanup(self.network)
        self.pods.clear()
        shutil.rmtree(self.directory / "claims", ignore_errors=True)
