"""``kubesft logs``: the trainer pod of a rank and attempt, found by the operator's labels."""

from __future__ import annotations

from typing import Any

from kubesft.pods import split_lines
from tests.unit.cli.conftest import Cli
from tests.unit.cli.fake_api import SFTJOBS, Answer, FakeApi, sftjob, status_body

JOBS = SFTJOBS.format(ns="team")
PODS = "/api/v1/namespaces/team/pods"


def pod(name: str, attempt: int = 0, rank: int | None = None, state: str = "running") -> dict[str, Any]:
    annotations = {} if rank is None else {"batch.kubernetes.io/job-completion-index": str(rank)}
    container_state: dict[str, Any] = (
        {"waiting": {"reason": "ContainerCreating"}} if state == "waiting" else {state: {}}
    )
    return {
        "metadata": {
            "name": name,
            "namespace": "team",
            "labels": {"kubesft.io/job": "smol", "kubesft.io/attempt": str(attempt)},
            "annotations": annotations,
            "creationTimestamp": "2025-01-01T00:00:00Z",
        },
        "spec": {"containers": [{"name": "trainer", "image": "trainer"}]},
        "status": {"phase": "Running", "containerStatuses": [_status(container_state)]},
    }


def _status(state: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "trainer",
        "image": "trainer",
        "imageID": "",
        "ready": True,
        "restartCount": 0,
        "state": state,
    }


def pods(*items: dict[str, Any]) -> Answer:
    return Answer(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": list(items)})


def test_logs_of_the_current_attempts_rank_zero(cli: Cli, api: FakeApi) -> None:
    api.on("GET", f"{JOBS}/smol", Answer(200, sftjob(phase="Running", attempt=1)))
    api.on("GET", PODS, pods(pod("smol-1-abcde", attempt=1)))
    api.on("GET", f"{PODS}/smol-1-abcde/log", Answer(200, "step 1\nstep 2\r\nlast", "text/plain"))
    result = cli("logs", "smol")
    assert (result.code, result.out, result.err) == (0, "step 1\nstep 2\nlast\n", "")
    listing, log = api.requests[1], api.requests[2]
    assert listing.query["labelSelector"] == ["kubesft.io/job=smol,kubesft.io/attempt=1"]
    assert log.query["container"] == ["trainer"]
    assert log.query.get("follow", ["False"]) == ["False"]


def test_a_rank_and_an_attempt_chosen(cli: Cli, api: FakeApi) -> None:
    api.on("GET", f"{JOBS}/smol", Answer(200, sftjob(phase="Running", attempt=3)))
    api.on("GET", PODS, pods(pod("smol-0-0-a", rank=0), pod("smol-0-1-b", rank=1)))
    api.on("GET", f"{PODS}/smol-0-1-b/log", Answer(200, "rank one\n", "text/plain"))
    result = cli("logs", "smol", "--rank", "1", "--attempt", "0")
    assert result.out == "rank one\n", result.err
    assert api.requests[1].query["labelSelector"] == ["kubesft.io/job=smol,kubesft.io/attempt=0"]


def test_follow_waits_for_the_container_then_streams(cli: Cli, api: FakeApi) -> None:
    api.on("GET", f"{JOBS}/smol", Answer(200, sftjob(phase="Pending")))
    api.on("GET", PODS, pods(pod("smol-0-a", state="waiting")), pods(pod("smol-0-a")))
    api.on("GET", f"{PODS}/smol-0-a/log", Answer(200, "started\n", "text/plain"))
    result = cli("logs", "smol", "-f")
    assert result.out == "started\n", result.err
    assert api.requests[-1].query["follow"] == ["True"]


def test_no_pod(cli: Cli, api: FakeApi) -> None:
    api.on("GET", f"{JOBS}/smol", Answer(200, sftjob(phase="Succeeded")))
    api.on("GET", PODS, pods())
    expected = (
        "kubesft: error: no pod for rank 0 of attempt 0 of SFTJob smol in namespace team "
        "(not started yet, or removed with its Job)\n"
    )
    assert cli("logs", "smol").err == expected
    # Following a finished job does not wait for a pod that will never come.
    assert cli("logs", "smol", "--follow").err == expected


def test_a_pod_that_has_not_started(cli: Cli, api: FakeApi) -> None:
    api.on("GET", f"{JOBS}/smol", Answer(200, sftjob(phase="Pending")))
    api.on("GET", PODS, pods(pod("smol-0-a", state="waiting")))
    result = cli("logs", "smol")
    assert result.code == 1
    assert result.err == (
        "kubesft: error: pod smol-0-a (rank 0 of attempt 0 of SFTJob smol) has no log yet: ContainerCreating\n"
    )


def test_the_api_server_refuses_the_log(cli: Cli, api: FakeApi) -> None:
    api.on("GET", f"{JOBS}/smol", Answer(200, sftjob(phase="Running")))
    api.on("GET", PODS, pods(pod("smol-0-a")))
    message = 'container "trainer" in pod "smol-0-a" is waiting to start: ContainerCreating'
    api.on("GET", f"{PODS}/smol-0-a/log", Answer(400, status_body(400, "BadRequest", message)))
    assert cli("logs", "smol").err == f"kubesft: error: pod smol-0-a has no log yet: {message}\n"
    api.on("GET", f"{PODS}/smol-0-a/log", Answer(403, status_body(403, "Forbidden", "no logs")))
    assert cli("logs", "smol").err == (
        "kubesft: error: forbidden: you may not get pods/log smol-0-a in namespace team (no logs)\n"
    )


def test_a_log_whose_connection_drops(cli: Cli, api: FakeApi) -> None:
    api.on("GET", f"{JOBS}/smol", Answer(200, sftjob(phase="Running")))
    api.on("GET", PODS, pods(pod("smol-0-a")))
    api.on("GET", f"{PODS}/smol-0-a/log", Answer(200, "half a", "text/plain", cut=True))
    result = cli("logs", "smol", "-f")
    assert result.code == 1
    assert result.err.splitlines()[-1].startswith("kubesft: error: lost the log of pod smol-0-a: "), (
        result.err
    )


def test_lines_split_across_chunks_and_utf8_split_across_chunks() -> None:
    chunks = [b"first li", b"ne\nsecond \xc3", b"\xa9\n", b"no newline"]
    assert list(split_lines(iter(chunks))) == ["first line", "second é", "no newline"]
