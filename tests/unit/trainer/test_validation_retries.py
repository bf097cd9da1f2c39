"""Validation retries network trouble a bounded number of times, and never a refusal."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from kubesft_trainer.errors import DataError, TrainerError
from kubesft_trainer.storage.objects import StorageError
from kubesft_trainer.validation.retries import ATTEMPTS, transient, with_retries


def _caused_by(cause: BaseException) -> StorageError:
    try:
        raise StorageError("writing s3://bucket/out/probe failed") from cause
    except StorageError as error:
        return error


def _denied() -> ClientError:
    return ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "PutObject")


def test_network_errors_are_retried_with_a_growing_delay_then_given_up() -> None:
    delays: list[float] = []
    calls = 0

    def unreachable() -> None:
        nonlocal calls
        calls += 1
        raise _caused_by(EndpointConnectionError(endpoint_url="http://minio:9000"))

    with pytest.raises(StorageError):
        with_retries("writing a probe", unreachable, sleep=delays.append)
    assert calls == ATTEMPTS
    assert delays == [1.0, 2.0]


def test_a_blip_passes_on_the_next_try() -> None:
    outcomes = iter([_caused_by(ConnectionResetError("reset by peer")), None])

    def flaky() -> str:
        failure = next(outcomes)
        if failure is not None:
            raise failure
        return "written"

    assert with_retries("writing a probe", flaky, sleep=lambda _: None) == "written"


@pytest.mark.parametrize(
    "error",
    [
        _caused_by(_denied()),
        _caused_by(PermissionError(13, "Permission denied")),
        DataError("dataset: row 3 is invalid"),
    ],
    ids=["access-denied", "read-only-path", "bad-data"],
)
def test_answers_that_a_retry_cannot_change_fail_at_once(error: TrainerError) -> None:
    assert not transient(error)
    calls = 0

    def refused() -> None:
        nonlocal calls
        calls += 1
        raise error

    with pytest.raises(TrainerError):
        with_retries("writing a probe", refused, sleep=lambda _: None)
    assert calls == 1
