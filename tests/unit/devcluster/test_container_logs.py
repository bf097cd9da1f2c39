"""A container's log as the process node keeps and serves it: each line with the time it was
written, and ``/containerLogs``'s tail, limit, since and follow."""

from __future__ import annotations

import datetime
import os
import threading
from pathlib import Path

import pytest

from testing.devcluster.container_logs import LogCopier, LogQuery, ended_path, read_log, times_path
from testing.devcluster.kubelet_server import LogRequestError, parse_query, pod_log_finder


def copied(tmp_path: Path, *chunks: bytes) -> Path:
    """The log of a container that wrote ``chunks`` and exited."""
    read, write = os.pipe()
    log = tmp_path / "0.log"
    copier = LogCopier(os.fdopen(read, "rb"), log)
    for chunk in chunks:
        os.write(write, chunk)
    os.close(write)
    copier.wait(timeout=10)
    return log


def text(log: Path, query: LogQuery) -> str:
    return b"".join(read_log(log, query, stopped=lambda: False)).decode()


def test_every_line_keeps_the_time_it_was_written_and_the_output_is_as_written(tmp_path: Path) -> None:
    log = copied(tmp_path, b"one\ntw", b"o\nthree\n", b"last")
    assert log.read_bytes() == b"one\ntwo\nthree\nlast"
    assert len(times_path(log).read_text().splitlines()) == 3
    assert ended_path(log).exists()
    stamped = text(log, LogQuery(timestamps=True)).splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["one", "two", "three", "last"]
    stamps = [line.split(" ", 1)[0] for line in stamped]
    assert stamps == sorted(stamps) and all(
        len(stamp) == len("2026-01-01T00:00:00.000000000Z") for stamp in stamps
    )


def test_tail_limit_and_since_as_the_kubelet_reads_them(tmp_path: Path) -> None:
    log = copied(tmp_path, b"one\ntwo\nthree\nlast")
    assert text(log, LogQuery()) == "one\ntwo\nthree\nlast"
    assert text(log, LogQuery(tail_lines=2)) == "three\nlast"
    assert text(log, LogQuery(tail_lines=0)) == ""
    assert text(log, LogQuery(limit_bytes=6)) == "one\ntw"
    future = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    assert text(log, LogQuery(since=future)) == ""


def test_follow_streams_until_the_container_output_closes(tmp_path: Path) -> None:
    read, write = os.pipe()
    log = tmp_path / "0.log"
    copier = LogCopier(os.fdopen(read, "rb"), log)
    os.write(write, b"first\n")
    got: list[bytes] = []
    follower = threading.Thread(
        target=lambda: got.extend(
            read_log(log, LogQuery(follow=True), stopped=lambda: False, poll_seconds=0.01)
        )
    )
    follower.start()
    os.write(write, b"second\n")
    os.close(write)
    copier.wait(timeout=10)
    follower.join(timeout=30)
    assert not follower.is_alive()
    assert b"".join(got) == b"first\nsecond\n"


def test_the_finder_answers_as_the_kubelet_when_there_is_no_log(tmp_path: Path) -> None:
    pod = tmp_path / "pod"
    (pod / "containers" / "main").mkdir(parents=True)
    find = pod_log_finder(lambda namespace, name: pod if name == "here" else None)
    with pytest.raises(LogRequestError) as missing:
        find("ns", "gone", "main", False)
    assert (missing.value.status, str(missing.value)) == (
        404,
        'pod "gone" in namespace "ns" not found on this node',
    )
    with pytest.raises(LogRequestError) as waiting:
        find("ns", "here", "main", False)
    assert (waiting.value.status, str(waiting.value)) == (
        400,
        'container "main" in pod "here" is waiting to start',
    )
    (pod / "containers" / "main" / "0.log").write_text("a\n")
    assert find("ns", "here", "main", False).name == "0.log"
    with pytest.raises(LogRequestError, match='previous terminated container "main" in pod "here" not found'):
        find("ns", "here", "main", True)
    (pod / "containers" / "main" / "1.log").write_text("b\n")
    assert find("ns", "here", "main", True).name == "0.log"


def test_query_strings_are_read_as_the_api_server_sends_them() -> None:
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    query, previous = parse_query(
        "follow=true&tailLines=5&timestamps=true&limitBytes=10&sinceSeconds=60", now
    )
    assert query == LogQuery(
        follow=True, tail_lines=5, timestamps=True, limit_bytes=10, since=now - datetime.timedelta(seconds=60)
    )
    assert previous is False
    assert parse_query("previous=true&sinceTime=2030-01-01T00:00:00Z", now) == (
        LogQuery(since=now),
        True,
    )
    with pytest.raises(LogRequestError, match="tailLines: 'x' is not an integer"):
        parse_query("tailLines=x", now)
