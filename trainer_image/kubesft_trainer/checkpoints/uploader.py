"""Uploads checkpoints on a background thread while training goes on.

The queue holds at most one waiting checkpoint besides the one uploading. A newer save replaces a
waiting one, whose snapshot is dropped: training never blocks on storage, and the newest save (the
final or preemption save above all) is always the one that stays. Failed uploads are retried with
exponential backoff until they succeed or a newer save supersedes them.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from kubesft_trainer.checkpoints.manifest import ManifestFile, checkpoint_name
from kubesft_trainer.checkpoints.store import CheckpointStore
from kubesft_trainer.reporting import metrics
from kubesft_trainer.storage.objects import StorageError

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 60.0
FINAL_ATTEMPTS = 6
"""Attempts at the last checkpoint once training ended, when no deadline bounds them."""


@dataclass(frozen=True)
class Snapshot:
    """A frozen local checkpoint folder waiting for upload; the uploader deletes it when done."""

    step: int
    directory: Path
    elsewhere: tuple[ManifestFile, ...] = ()
    """Files other nodes uploaded into the checkpoint already, for its manifest."""


@dataclass(frozen=True)
class UploadState:
    latest_step: int | None = None
    latest_uri: str | None = None
    failures: int = 0
    status: str | None = None
    last_error: str | None = None
    """The newest upload failure since the last complete upload; None once one lands."""


class CheckpointUploader:
    def __init__(
        self,
        store: CheckpointStore,
        keep: int,
        first_retry_seconds: float = FIRST_RETRY_SECONDS,
        max_retry_seconds: float = MAX_RETRY_SECONDS,
        final_attempts: int = FINAL_ATTEMPTS,
    ) -> None:
        self.store = store
        self.keep = keep
        self.first_retry_seconds = first_retry_seconds
        self.max_retry_seconds = max_retry_seconds
        self.final_attempts = final_attempts
        self._lock = threading.Condition()
        self._waiting: Snapshot | None = None
        self._current: Snapshot | None = None
        self._finishing = False
        self._deadline: float | None = None
        self._final_error: StorageError | None = None
        self._state = UploadState()
        self._thread: threading.Thread | None = None

    def state(self) -> UploadState:
        with self._lock:
            return self._state

    def set_latest(self, step: int, uri: str) -> None:
        """Record a complete checkpoint found in the store (at resume)."""
        with self._lock:
            self._state = replace(self._state, latest_step=step, latest_uri=uri)
        metrics.CHECKPOINT_LATEST_STEP.set(step)

    def submit(self, snapshot: Snapshot) -> None:
        with self._lock:
            if self._finishing:
                raise RuntimeError("the uploader is finishing; no further checkpoints are accepted")
            replaced, self._waiting = self._waiting, snapshot
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="checkpoint-upload", daemon=True)
                self._thread.start()
            self._lock.notify_all()
        if replaced is not None:
            log.warning(
                "%s was still waiting for upload when %s was saved; only the newer one is uploaded",
                checkpoint_name(replaced.step),
                checkpoint_name(snapshot.step),
            )
            shutil.rmtree(replaced.directory, ignore_errors=True)

    def finish(self, deadline: float | None) -> None:
        """Wait until every accepted checkpoint is uploaded (``deadline`` is a ``time.monotonic()``).

        Raises ``StorageError`` when the last checkpoint could not be uploaded in time.
        """
        with self._lock:
            self._finishing = True
            self._deadline = deadline
            self._lock.notify_all()
            done = self._lock.wait_for(
                lambda: self._current is None and self._waiting is None,
                timeout=None if deadline is None else max(0.0, deadline - time.monotonic()),
            )
            if not done:
                pending = self._current or self._waiting
                assert pending is not None
                raise StorageError(
                    f"uploading {self.store.location(pending.step)} did not finish in time"
                    + (f" ({self._state.status})" if self._state.status else "")
                )
            if self._final_error is not None:
                raise self._final_error

    def _set(self, **changes: object) -> None:
        with self._lock:
            self._state = replace(self._state, **changes)  # type: ignore[arg-type]

    def _run(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._waiting is not None)
                self._current, self._waiting = self._waiting, None
                snapshot = self._current
            assert snapshot is not None
            try:
                self._upload_with_retries(snapshot)
            finally:
                shutil.rmtree(snapshot.directory, ignore_errors=True)
                with self._lock:
                    self._current = None
                    self._lock.notify_all()

    def _upload_with_retries(self, snapshot: Snapshot) -> None:
        attempts = 0
        while True:
            attempts += 1
            with self._lock:
                uploading = f"uploading {checkpoint_name(snapshot.step)}"
                if self._state.last_error is not None:
                    # A retry or a newer save must not hide that storage is failing.
                    uploading += f" (the last upload failed: {self._state.last_error})"
                self._state = replace(self._state, status=uploading)
            started = time.monotonic()
            try:
                manifest = self.store.upload(snapshot.directory, snapshot.step, snapshot.elsewhere)
            except (StorageError, OSError, ValueError) as error:
                metrics.CHECKPOINT_UPLOAD_FAILURES.inc()
                delay = min(self.first_retry_seconds * 2 ** (attempts - 1), self.max_retry_seconds)
                with self._lock:
                    failures = self._state.failures + 1
                    self._state = replace(
                        self._state,
                        failures=failures,
                        status=f"upload of {checkpoint_name(snapshot.step)} failed (attempt {attempts}): {error}",
                        last_error=f"{checkpoint_name(snapshot.step)}, attempt {attempts}: {error}",
                    )
                log.warning(
                    "upload of %s failed (attempt %d, %d failures so far): %s",
                    self.store.location(snapshot.step),
                    attempts,
                    failures,
                    error,
                )
                if self._give_up(snapshot, attempts, delay, error):
                    return
                continue
            elapsed = time.monotonic() - started
            metrics.CHECKPOINT_UPLOAD_SECONDS.observe(elapsed)
            metrics.CHECKPOINT_UPLOAD_BYTES.inc(manifest.total_bytes)
            metrics.CHECKPOINT_LATEST_STEP.set(manifest.step)
            uri = self.store.location(manifest.step)
            log.info("checkpoint %s complete (%.1f MB in %.1f s)", uri, manifest.total_bytes / 1e6, elapsed)
            self._set(
                latest_step=manifest.step, latest_uri=uri, status=f"{manifest.name} complete", last_error=None
            )
            self._retain()
            return

    def _give_up(self, snapshot: Snapshot, attempts: int, delay: float, error: Exception) -> bool:
        """Wait ``delay`` before the next attempt; True when this checkpoint is abandoned instead."""
        with self._lock:
            wait_until = time.monotonic() + delay
            while True:
                if self._waiting is not None:
                    log.warning(
                        "dropping %s: %s is newer",
                        checkpoint_name(snapshot.step),
                        checkpoint_name(self._waiting.step),
                    )
                    return True
                if self._finishing:
                    now = time.monotonic()
                    if self._deadline is not None:
                        # Keep trying until the deadline, at least twice more in what is left of it.
                        out_of_attempts = self._deadline - now < 0.5
                        wait_until = min(wait_until, now + (self._deadline - now) / 2)
                    else:
                        out_of_attempts = attempts >= self.final_attempts
                    if out_of_attempts:
                        self._final_error = StorageError(
                            f"uploading {self.store.location(snapshot.step)} failed after {attempts} attempts: {error}"
                        )
                        return True
                remaining = wait_until - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(timeout=remaining)

    def _retain(self) -> None:
        try:
            deleted = self.store.apply_retention(self.keep)
        except StorageError as error:
            log.warning("could not delete old checkpoints: %s", error)
            return
        if deleted:
            log.info("deleted old checkpoints %s", ", ".join(checkpoint_name(step) for step in deleted))
