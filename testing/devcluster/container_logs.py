"""A container's log as the kubelet keeps it: the output, and when each line of it was written.

The node copies a container's output from a pipe into ``<restart>.log`` and appends the arrival
time of every line to ``<restart>.times``, so ``kubectl logs --timestamps`` and ``--since`` read
the time each line was written, not the time it was read. ``<restart>.ended`` marks a container
whose output is closed: a follower stops there, as the kubelet's does when a container exits.
"""

from __future__ import annotations

import datetime
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

_CHUNK = 64 * 1024


def _stamp(moment: datetime.datetime) -> str:
    """RFC 3339 with nanoseconds, as the kubelet prefixes each line with ``timestamps=true``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def log_files(pod_directory: Path, container: str) -> list[Path]:
    """The logs of a container of the pod kept in ``pod_directory``, one per run, oldest first."""
    logs = (pod_directory / "containers" / container).glob("*.log")
    return sorted(logs, key=lambda path: int(path.stem))


def log_text(pod_directory: Path, container: str | None, *, previous: bool = False) -> str:
    """The output of the container's last run (``previous``: the run before it); ``container`` may
    be left out of a pod with one. LookupError says why there is none to read."""
    names = sorted(path.name for path in (pod_directory / "containers").iterdir())
    if container is None:
        if len(names) != 1:
            raise LookupError(f"has containers {names}: name one")
        container = names[0]
    logs = log_files(pod_directory, container)
    if not logs:
        return ""
    if previous:
        if len(logs) < 2:
            raise LookupError(f"container {container} has not restarted")
        return logs[-2].read_text(errors="replace")
    return logs[-1].read_text(errors="replace")


def times_path(log: Path) -> Path:
    return log.with_suffix(".times")


def ended_path(log: Path) -> Path:
    return log.with_suffix(".ended")


class LogCopier:
    """Copies one container run's output (``source``, a pipe) into ``log``, stamping each line."""

    def __init__(self, source: IO[bytes], log: Path) -> None:
        self.source = source
        self.log = log
        self._thread = threading.Thread(target=self._copy, name=f"log-{log.parent.name}", daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        fd = self.source.fileno()
        with open(self.log, "ab") as out, open(times_path(self.log), "a") as times:
            try:
                while chunk := os.read(fd, _CHUNK):
                    # The times go first: a reader that sees a line also sees its time.
                    if lines := chunk.count(b"\n"):
                        times.write(f"{_stamp(_now())}\n" * lines)
                        times.flush()
                    out.write(chunk)
                    out.flush()
            finally:
                self.source.close()
                ended_path(self.log).touch()

    def wait(self, timeout: float) -> None:
        """Until everything the container wrote is in the log (its processes are gone)."""
        self._thread.join(timeout)


@dataclass(frozen=True)
class LogQuery:
    """What ``/containerLogs`` takes, with the kubelet's meaning."""

    follow: bool = False
    tail_lines: int | None = None
    timestamps: bool = False
    limit_bytes: int | None = None
    since: datetime.datetime | None = None


@dataclass(frozen=True)
class _Line:
    stamp: str
    text: bytes


def _lines(log: Path, offset: int, known: int) -> tuple[list[_Line], int, int]:
    """Complete lines written to ``log`` after byte ``offset`` (the ``known``-th line on), their
    times, and the offset and line count after them. A last line without a newline waits."""
    with open(log, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    end = data.rfind(b"\n") + 1
    if end == 0:
        return [], offset, known
    stamps = _read_stamps(log)
    mtime = _stamp(datetime.datetime.fromtimestamp(log.stat().st_mtime, datetime.UTC))
    found = []
    for index, text in enumerate(data[:end].splitlines(keepends=True)):
        number = known + index
        found.append(_Line(stamps[number] if number < len(stamps) else mtime, text))
    return found, offset + end, known + len(found)


def _read_stamps(log: Path) -> list[str]:
    try:
        return times_path(log).read_text().splitlines()
    except FileNotFoundError:
        return []


def _rest(log: Path, offset: int) -> bytes:
    with open(log, "rb") as handle:
        handle.seek(offset)
        return handle.read()


def read_log(
    log: Path, query: LogQuery, *, stopped: Callable[[], bool], poll_seconds: float = 0.2
) -> Iterator[bytes]:
    """The log as ``/containerLogs`` answers it. With ``follow`` it waits for more until the
    container's output closes or ``stopped()`` (the client went away)."""
    budget = query.limit_bytes

    def shaped(lines: list[_Line]) -> Iterator[bytes]:
        nonlocal budget
        for line in lines:
            if query.since is not None and line.stamp < _stamp(query.since):
                continue
            out = (line.stamp.encode() + b" " + line.text) if query.timestamps else line.text
            if budget is not None:
                out, budget = out[:budget], budget - len(out[:budget])
            if out:
                yield out

    lines, offset, known = _lines(log, 0, 0)
    if query.tail_lines is not None:
        # A last line without a newline yet counts as one, as the kubelet counts it.
        keep = query.tail_lines - (1 if _rest(log, offset) else 0)
        lines = lines[-keep:] if keep > 0 else []
    yield from shaped(lines)
    while budget is None or budget > 0:
        ended = ended_path(log).exists()
        more, offset, known = _lines(log, offset, known)
        yield from shaped(more)
        if ended or not query.follow or stopped():
            break
        if not more:
            time.sleep(poll_seconds)
    if budget is None or budget > 0:
        # A last line without a newline: the kubelet shows it once the container has written it.
        rest = _rest(log, offset)
        if rest:
            stamp = _stamp(datetime.datetime.fromtimestamp(log.stat().st_mtime, datetime.UTC))
            yield from shaped([_Line(stamp, rest)])
