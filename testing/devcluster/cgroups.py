"""Per-container memory cgroups: a memory limit that really OOM-kills, and a way to kill every
process a container started, however it detached itself.

Pod cgroups are made below the cgroup this process runs in, so pods stay inside whatever limits
the caller already has. Without a writable cgroup filesystem the node falls back to process groups.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from testing.devcluster.run_state import kill_cgroup, remove_cgroup

_ROOT = Path("/sys/fs/cgroup")


def _own_memory_cgroup() -> tuple[Path, bool] | None:
    """(directory of this process's memory cgroup, is cgroup v2)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return _ROOT / "memory" / path.lstrip("/"), False
    if (_ROOT / "cgroup.controllers").exists():
        for line in lines:
            if line.startswith("0::"):
                return _ROOT / line[3:].lstrip("/"), True
    return None


class ContainerCgroup:
    """One container's cgroup."""

    def __init__(self, path: Path, v2: bool) -> None:
        self.path = path
        self.v2 = v2

    @property
    def procs_file(self) -> Path:
        return self.path / "cgroup.procs"

    def set_memory_limit(self, limit_bytes: int) -> None:
        name = "memory.max" if self.v2 else "memory.limit_in_bytes"
        (self.path / name).write_text(str(limit_bytes))

    def oom_killed(self) -> bool:
        """True when the kernel OOM-killed a process of this container."""
        name = "memory.events" if self.v2 else "memory.oom_control"
        try:
            for line in (self.path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        except OSError:
            return False
        return False

    def pids(self) -> list[int]:
        try:
            return [int(pid) for pid in self.procs_file.read_text().split()]
        except OSError:
            return []

    def kill(self) -> list[int]:
        return kill_cgroup(self.path)

    def remove(self) -> None:
        remove_cgroup(self.path)


class CgroupTree:
    """The run's cgroup directory, parent of every container cgroup; None-safe when unavailable."""

    def __init__(self, run_id: str) -> None:
        self.path: Path | None = None
        self.v2 = False
        own = _own_memory_cgroup()
        if own is None:
            return
        parent, self.v2 = own
        candidate = parent / f"kubesft-{run_id}"
        try:
            candidate.mkdir(exist_ok=True)
            if self.v2:
                # Child cgroups only get a memory controller if the parent hands it down.
                with contextlib.suppress(OSError):
                    (candidate / "cgroup.subtree_control").write_text("+memory")
        except OSError:
            return
        if os.access(candidate / "cgroup.procs", os.W_OK):
            self.path = candidate

    def container(self, pod_uid: str, container: str, restart: int) -> ContainerCgroup | None:
        if self.path is None:
            return None
        path = self.path / f"{pod_uid}-{container}-{restart}"
        try:
            path.mkdir()
        except OSError:
            return None
        return ContainerCgroup(path, self.v2)

    def remove(self) -> None:
        if self.path is not None:
            kill_cgroup(self.path)
            remove_cgroup(self.path)
