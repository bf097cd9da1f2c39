"""Child processes of the local cluster: started so they die with their parent, stopped by PID."""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL the calling process when the thread that forked it exits.

    Used as ``preexec_fn`` so no etcd or apiserver outlives a test run that was killed hard.
    """
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the kernel reports free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # The command name may hold spaces and parentheses; fields after it are fixed.
            return stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def process_identity(pid: int) -> tuple[int, int] | None:
    """(pid, start time in clock ticks): tells a process apart from a later one reusing its PID."""
    fields = _stat_fields(pid)
    return None if fields is None else (pid, int(fields[19]))


def same_process(identity: tuple[int, int]) -> bool:
    return pid_alive(identity[0]) and process_identity(identity[0]) == tuple(identity)


def wait_pids_gone(pids: Sequence[int], timeout: float) -> list[int]:
    """Wait until none of ``pids`` is alive; returns the ones still alive at the deadline."""
    deadline = time.monotonic() + timeout
    alive = [pid for pid in pids if pid_alive(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [pid for pid in alive if pid_alive(pid)]
    return alive


class ManagedProcess:
    """One long-running binary with its output in a log file, stopped by PID."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        *,
        tie_to_parent: bool = True,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._env = dict(env) if env is not None else None
        self._tie_to_parent = tie_to_parent
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._popen is None:
            raise RuntimeError(f"{self.name} was not started")
        return self._popen.pid

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
                start_new_session=True,
                preexec_fn=die_with_parent if self._tie_to_parent else None,
            )

    def exited(self) -> int | None:
        """The exit code once the process has ended, else None."""
        return None if self._popen is None else self._popen.poll()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds, and reap it."""
        if self._popen is None:
            return
        stop_process_group(self._popen.pid, grace)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout=grace + 1)


def stop_process_group(pid: int, grace: float) -> None:
    """SIGTERM the group led by ``pid``, then SIGKILL whatever is left after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        if not wait_pids_gone([pid], grace if sig == signal.SIGTERM else 5.0):
            return


def wait_for_http(process: ManagedProcess, host: str, port: int, path: str, timeout: float) -> None:
    """Until ``http://host:port/path`` answers 200; RuntimeError with the log tail if ``process``
    exits or ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        code = process.exited()
        if code is not None:
            raise RuntimeError(f"{process.name} exited with {code}:\n{process.log_tail()}")
        connection = http.client.HTTPConnection(host, port, timeout=2)
        try:
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{process.name} not ready after {timeout:.0f}s:\n{process.log_tail()}")
        time.sleep(0.1)
