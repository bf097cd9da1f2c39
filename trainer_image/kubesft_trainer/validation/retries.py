"""Bounded retries of network trouble inside the validation stage, so one blip does not fail a job."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from kubesft_api import exit_codes
from kubesft_trainer.errors import TrainerError

log = logging.getLogger(__name__)

T = TypeVar("T")

ATTEMPTS = 3
FIRST_DELAY_SECONDS = 1.0


def transient(error: BaseException) -> bool:
    """Whether ``error`` may pass: a retryable trainer error whose cause is not an answer from the
    server (a refusal, a missing bucket) or a local file-system verdict."""
    if not isinstance(error, TrainerError) or error.exit_code != exit_codes.RUNTIME_FAILURE:
        return False
    cause = error.__cause__
    while isinstance(cause, TrainerError) and cause.__cause__ is not None:
        cause = cause.__cause__
    if isinstance(cause, PermissionError | FileNotFoundError | NotADirectoryError | IsADirectoryError):
        return False
    try:
        from botocore.exceptions import ClientError
    except ImportError:  # pragma: no cover - boto3 is in the trainer image
        return True
    if isinstance(cause, ClientError):
        code = str(cause.response.get("Error", {}).get("Code", ""))
        return code in ("SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "500", "503")
    return True


def with_retries(
    what: str,
    action: Callable[[], T],
    sleep: Callable[[float], None] = time.sleep,
    attempts: int = ATTEMPTS,
) -> T:
    """``action()``, tried again after 1 s, 2 s, … while it fails with a transient error."""
    delay = FIRST_DELAY_SECONDS
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except TrainerError as error:
            if attempt == attempts or not transient(error):
                raise
            log.warning(
                "%s failed (attempt %d of %d), retrying in %.0fs: %s", what, attempt, attempts, delay, error
            )
            sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover
