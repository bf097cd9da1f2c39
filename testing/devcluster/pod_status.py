"""Pod and container status documents in the shape the kubelet writes them."""

from __future__ import annotations

import datetime
from typing import Any

# Like the kubelet: the termination message is capped, and the log fallback takes the tail.
MAX_MESSAGE_BYTES = 4096
LOG_FALLBACK_LINES = 80
LOG_FALLBACK_BYTES = 2048


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
