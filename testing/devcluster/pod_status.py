"""Pod and container status documents in the shape the kubelet writes them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubesft_api.times import now_text

if TYPE_CHECKING:
    from testing.devcluster.containers import ContainerRun
    from testing.devcluster.pod_runtime import PodRuntime

# Like the kubelet: the termination message is capped, and the log fallback takes the tail.
MAX_MESSAGE_BYTES = 4096
LOG_FALLBACK_LINES = 80
LOG_FALLBACK_BYTES = 2048


def now() -> str:
    return now_text()


def waiting(reason: str, message: str | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {"reason": reason}
    if message:
        detail["message"] = message
    # Explicit nulls: a merge patch must drop the state the container was in before.
    return {"waiting": detail, "running": None, "terminated": None}


def running(started_at: str) -> dict[str, Any]:
    return {"waiting": None, "running": {"startedAt": started_at}, "terminated": None}


def terminated(
    exit_code: int,
    reason: str,
    started_at: str | None,
    finished_at: str,
    message: str | None,
    container_id: str,
) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": started_at,
        "finishedAt": finished_at,
        "containerID": container_id,
    }
    if exit_code > 128:
        detail["signal"] = exit_code - 128
    if message:
        detail["message"] = message
    return {"waiting": None, "running": None, "terminated": detail}


def condition(kind: str, status: bool, reason: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": kind, "status": "True" if status else "False", "lastProbeTime": None}
    if reason:
        item["reason"] = reason
    return item


def phase_of(pod: PodRuntime) -> str:
    """The pod's phase from its containers' runs and any pod-level failure."""
    if pod.failure is not None and pod.finished():
        return "Failed"
    init_failed = any(r.done and not r.succeeded for r in pod.init_runs)
    if init_failed and pod.finished():
        return "Failed"
    if not pod.runs or any(r.started_at is None for r in pod.runs):
        return "Failed" if init_failed else "Pending"
    if all(r.done for r in pod.runs):
        return "Succeeded" if all(r.succeeded for r in pod.runs) else "Failed"
    return "Running"


def _container_status(pod: PodRuntime, run: ContainerRun) -> dict[str, Any]:
    state = run.state
    if pod.config_error is not None and run.process is None and not run.done:
        state = waiting(*pod.config_error)
    return {
        "name": run.name,
        "state": state,
        "lastState": run.last_state,
        "ready": bool(state.get("running")),
        "restartCount": run.restart_count,
        "image": run.spec.get("image", ""),
        "imageID": "",
        "containerID": f"process://{run.process.pid}" if run.process else None,
        "started": bool(state.get("running")),
    }


def _condition(pod: PodRuntime, kind: str, status: bool, reason: str | None = None) -> dict[str, Any]:
    value = "True" if status else "False"
    previous = pod.transitions.get(kind)
    if previous is None or previous[0] != value:
        pod.transitions[kind] = (value, now())
    item = condition(kind, status, reason)
    item["lastTransitionTime"] = pod.transitions[kind][1]
    return item


def status_of(pod: PodRuntime) -> dict[str, Any]:
    """The Pod status a kubelet would write for the pod now."""
    phase = phase_of(pod)
    initialized = all(r.done and r.succeeded for r in pod.init_runs)
    ready = phase == "Running" and all(r.state.get("running") for r in pod.runs)
    status: dict[str, Any] = {
        "phase": phase,
        "hostIP": pod.settings.host_ip,
        "podIP": pod.address,
        "podIPs": [{"ip": pod.address}] if pod.address else None,
        "startTime": pod.start_time,
        "conditions": [
            _condition(pod, "Initialized", initialized),
            _condition(pod, "Ready", ready, None if ready else "ContainersNotReady"),
            _condition(pod, "ContainersReady", ready, None if ready else "ContainersNotReady"),
            _condition(pod, "PodScheduled", True),
        ],
        "initContainerStatuses": [_container_status(pod, r) for r in pod.init_runs] or None,
        "containerStatuses": [_container_status(pod, r) for r in pod.runs],
        "qosClass": (pod.pod.get("status") or {}).get("qosClass"),
    }
    if pod.failure is not None:
        status["reason"], status["message"] = pod.failure
    return status
