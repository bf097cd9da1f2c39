"""A pod's containers on the process node: the harness's stand-in commands, and each container's
run (its process, cgroup, state and files) up to what it leaves behind when it exits."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testing.devcluster import pod_status
from testing.devcluster.cgroups import ContainerCgroup
from testing.devcluster.container_logs import LogCopier


@dataclass(frozen=True)
class CommandOverride:
    """Harness option: run ``command`` instead of what matching containers ask for.

    A container matches when its image matches ``image_pattern`` (fnmatch) and its pod carries
    every label in ``pod_labels``; ``None`` means any. The environment stays the pod's own.
    """

    command: tuple[str, ...]
    image_pattern: str | None = None
    pod_labels: Mapping[str, str] | None = None

    def matches(self, pod: Mapping[str, Any], container: Mapping[str, Any]) -> bool:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if self.image_pattern is not None and not fnmatch.fnmatchcase(
            container.get("image", ""), self.image_pattern
        ):
            return False
        return all(labels.get(k) == v for k, v in (self.pod_labels or {}).items())


@dataclass
class ContainerRun:
    spec: dict[str, Any]
    init: bool
    directory: Path
    restart_count: int = 0
    process: subprocess.Popen[bytes] | None = None
    cgroup: ContainerCgroup | None = None
    log_copier: LogCopier | None = None
    started_at: str | None = None
    state: dict[str, Any] = field(default_factory=lambda: pod_status.waiting("ContainerCreating"))
    last_state: dict[str, Any] = field(default_factory=dict)
    restart_at: float | None = None
    done: bool = False  # terminated and will not run again

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def log_path(self, restart: int | None = None) -> Path:
        return self.directory / f"{self.restart_count if restart is None else restart}.log"

    @property
    def termination_file(self) -> Path:
        return self.directory / "termination-log"

    @property
    def start_error_file(self) -> Path:
        return self.directory / "start-error"

    @property
    def succeeded(self) -> bool:
        term = self.state.get("terminated") or {}
        return bool(term) and term.get("exitCode") == 0

    def kill(self, sig: int) -> None:
        """SIGTERM to the main process only (as the kubelet does), SIGKILL to all its processes."""
        if self.process is None or self.process.poll() is not None:
            return
        if sig == signal.SIGKILL:
            if self.cgroup is not None:
                self.cgroup.kill()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                self.process.send_signal(sig)

    def termination_message(self, exit_code: int) -> str | None:
        try:
            message = self.termination_file.read_bytes()[: pod_status.MAX_MESSAGE_BYTES].decode(
                errors="replace"
            )
        except OSError:
            message = ""
        if (
            not message
            and exit_code != 0
            and self.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        ):
            lines = (
                self.log_path()
                .read_bytes()
                .decode(errors="replace")
                .splitlines()[-pod_status.LOG_FALLBACK_LINES :]
            )
            message = "\n".join(lines)[-pod_status.LOG_FALLBACK_BYTES :]
        return message or None
