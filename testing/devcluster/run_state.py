"""Per-run directories and the leftovers of runs whose owner died without cleaning up.

Every run gets ``<root>/<run id>/`` with ``owner.pid`` and a ``leftovers.json`` listing what it
made outside that directory (processes, network namespaces, the bridge, cgroups, mount points).
A new run first reaps the leftovers of any run whose owner process is gone, so a test run killed
hard never leaves a bridge, namespace or process behind for the next one.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from testing.devcluster.processes import process_identity, same_process, wait_pids_gone


def runs_root() -> Path:
    return Path(os.environ.get("KUBESFT_DEVCLUSTER_ROOT", "/tmp/kubesft-devcluster"))


class RunState:
    """The directory of one run and the record of what it made outside it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.run_id = directory.name
        self._lock = threading.Lock()
        self._leftovers_path = directory / "leftovers.json"

    @classmethod
    def create(cls) -> RunState:
        root = runs_root()
        root.mkdir(parents=True, exist_ok=True)
        reap_stale_runs(root)
        while True:
            directory = root / secrets.token_hex(3)
            try:
                directory.mkdir()
                break
            except FileExistsError:
                continue
        (directory / "owner.pid").write_text(json.dumps(process_identity(os.getpid())))
        state = cls(directory)
        state._write({"pids": [], "netns": [], "links": [], "cgroups": [], "paths": [], "trees": []})
        return state

    def _read(self) -> dict[str, list[Any]]:
        try:
            data: dict[str, list[Any]] = json.loads(self._leftovers_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return data

    def _write(self, data: dict[str, list[Any]]) -> None:
        tmp = self._leftovers_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self._leftovers_path)

    def remember(self, kind: str, value: Any) -> None:
        with self._lock:
            data = self._read()
            if value not in data.setdefault(kind, []):
                data[kind].append(value)
            self._write(data)

    def forget(self, kind: str, value: Any) -> None:
        with self._lock:
            data = self._read()
            if value in data.get(kind, []):
                data[kind].remove(value)
            self._write(data)

    def remember_process(self, pid: int) -> None:
        """A process started for the cluster: ``clean_up`` ends it, even after a crash of this one."""
        identity = process_identity(pid)
        if identity is not None:
            self.remember("pids", list(identity))

    def forget_process(self, pid: int) -> None:
        identity = process_identity(pid)
        if identity is not None:
            self.forget("pids", list(identity))

    def clean_up(self, remove_directory: bool = True) -> None:
        """Remove everything recorded; safe to call twice."""
        with self._lock:
            _remove_leftovers(self._read())
            if remove_directory:
                shutil.rmtree(self.directory, ignore_errors=True)
            else:
                self._write({})


def _remove_leftovers(data: dict[str, list[Any]]) -> None:
    # A PID is only signalled while it still names the process that was started (same start time).
    pids = [int(pid) for pid, started in data.get("pids", []) if same_process((int(pid), int(started)))]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    for cgroup in data.get("cgroups", []):
        kill_cgroup(Path(cgroup))
    wait_pids_gone(pids, 5.0)
    for cgroup in data.get("cgroups", []):
        remove_cgroup(Path(cgroup))
    for netns in data.get("netns", []):
        subprocess.run(["ip", "netns", "delete", netns], capture_output=True, check=False)
    for link in data.get("links", []):
        subprocess.run(["ip", "link", "delete", link], capture_output=True, check=False)
    # Mount-point directories the node had to create on the host; only removed while empty.
    for path in sorted(data.get("paths", []), key=len, reverse=True):
        with contextlib.suppress(OSError):
            os.rmdir(path)
    # Directories of the run kept outside it (etcd's data on tmpfs): removed with their contents.
    for path in data.get("trees", []):
        shutil.rmtree(path, ignore_errors=True)


def kill_cgroup(cgroup: Path) -> list[int]:
    """SIGKILL every process in ``cgroup`` and its children; returns the PIDs signalled."""
    killed: list[int] = []
    for procs in sorted(cgroup.rglob("cgroup.procs")) if cgroup.is_dir() else []:
        with contextlib.suppress(OSError):
            for line in procs.read_text().split():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(line), signal.SIGKILL)
                    killed.append(int(line))
    return killed


def remove_cgroup(cgroup: Path, timeout: float = 5.0) -> None:
    """Remove ``cgroup`` and its children once their killed processes have gone."""
    deadline = time.monotonic() + timeout
    while cgroup.is_dir():
        children = sorted(
            (p for p in cgroup.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
        )
        for directory in [*children, cgroup]:
            with contextlib.suppress(OSError):
                directory.rmdir()
        if not cgroup.is_dir() or time.monotonic() > deadline:
            return
        time.sleep(0.05)


def reap_stale_runs(root: Path) -> None:
    """Clean up after runs whose owner process no longer exists."""
    if not root.is_dir():
        return
    for directory in root.iterdir():
        owner = directory / "owner.pid"
        try:
            pid, started = json.loads(owner.read_text())
        except (OSError, ValueError, TypeError):
            continue
        if same_process((int(pid), int(started))):
            continue
        RunState(directory).clean_up()
