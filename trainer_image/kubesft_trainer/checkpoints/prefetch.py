"""The resume's checkpoint, chosen and downloaded in a process of its own while the trainer starts.

A process, not a thread: the download's threads would take the interpreter lock from the imports
and the model loading beside them hundreds of times a second; on a two-CPU node that made the
imports 1.2 s slower, most of the 1.6 s the download itself took. The process runs at the lowest CPU
priority: the imports it runs beside take 8 to 15 s, several times what the download needs, so it
can wait for a CPU they leave. At its default priority its threads took CPU from the imports on a
two-CPU node and made them 1.7 s slower (median of 6 runs); at the lowest, no slower than alone, and
the download still done before it was needed. The process's log records are handed back with its
result and logged here, in order, with this process's format.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import time
from multiprocessing.connection import Connection
from typing import Any

from kubesft_trainer.checkpoints.resume import ResumeChoice, choose
from kubesft_trainer.errors import ConfigError, TrainerError
from kubesft_trainer.storage.objects import StorageError

Chosen = dict[str, Any] | None

NICENESS = 19
"""The prefetch process's nice value: the lowest priority, so it takes only CPU the train loop leaves."""


class _Keep(logging.Handler):
    """Keeps each record, its message formatted, to hand to the parent."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        record.msg, record.args, record.exc_info = record.getMessage(), None, None
        self.records.append(record)


def portable_error(error: BaseException) -> BaseException:
    """The error as it can cross to the parent: itself where it pickles back, else the nearest
    trainer error with its message (a storage error stays retryable)."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # any error that cannot be rebuilt on the other side
        for kind in (StorageError, ConfigError, TrainerError):
            if isinstance(error, kind):
                return kind(str(error))
        return TrainerError(f"{type(error).__name__}: {error}")
    return error


def _child(choice: ResumeChoice, send: Connection) -> None:
    # Before any thread starts: the download's threads inherit it.
    os.nice(NICENESS - os.nice(0))
    kept = _Keep()
    root = logging.getLogger()
    root.addHandler(kept)
    root.setLevel(logging.INFO)
    started = time.monotonic()
    try:
        outcome: tuple[str, object] = ("ok", choose(choice))
    except BaseException as error:  # handed to the parent, which raises it
        outcome = ("error", portable_error(error))
    send.send((*outcome, time.monotonic() - started, time.time(), kept.records))
    send.close()


class ResumePrefetch:
    """``choose(choice)`` starts at once in a spawned process; ``result()`` waits for its answer,
    logs its records, and returns the choice or raises its error.

    The process is a daemon: a trainer that fails before it needs the checkpoint ends it on exit.
    """

    def __init__(self, choice: ResumeChoice) -> None:
        context = multiprocessing.get_context("spawn")
        self._answer, send = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_child, args=(choice, send), name="kubesft-resume", daemon=True
        )
        self._process.start()
        send.close()
        self.seconds: float | None = None
        """How long the choosing and downloading took, once answered."""
        self.finished_at: float | None = None
        """When they were done (Unix time), once answered: the startup phases begun before it ran beside them."""
        self._outcome: tuple[str, Any] | None = None

    def result(self) -> Chosen:
        if self._outcome is None:
            self._outcome = self._receive()
        status, value = self._outcome
        if status == "error":
            raise value
        return value  # type: ignore[no-any-return]

    def _receive(self) -> tuple[str, Any]:
        try:
            status, value, seconds, finished_at, records = self._answer.recv()
        except EOFError:
            self._process.join()
            raise TrainerError(
                f"the process that downloads the checkpoint to resume from ended with exit code "
                f"{self._process.exitcode} before it answered"
            ) from None
        self._process.join()
        self.seconds, self.finished_at = float(seconds), float(finished_at)
        for record in records:
            logger = logging.getLogger(record.name)
            if logger.isEnabledFor(record.levelno):
                logger.handle(record)
        return status, value
