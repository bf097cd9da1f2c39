"""SIGTERM as a request to save and stop: the pod is being preempted, suspended or deleted.

Before training starts there is nothing to save, so the signal ends the process at once with the
"preempted" exit code. Once training runs, it only raises a flag; the checkpoint callback turns it
into a save at the current step and a clean stop (synchronised across ranks).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

from kubesft_api import exit_codes
from kubesft_trainer.errors import TrainerError

log = logging.getLogger(__name__)


class PreemptedError(TrainerError):
    """SIGTERM arrived before there was any training progress to save."""

    exit_code = exit_codes.PREEMPTED


class PreemptionSignal:
    """Whether (and when) SIGTERM was received."""

    def __init__(self) -> None:
        self.received_at: float | None = None
        self.training = False
        self._previous: object = None

    @property
    def received(self) -> bool:
        return self.received_at is not None

    def install(self) -> bool:
        """Handle SIGTERM in this process. Only the main thread can install handlers."""
        if threading.current_thread() is not threading.main_thread():
            log.warning("not on the main thread: SIGTERM will not trigger a checkpoint")
            return False
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        return True

    def request(self) -> None:
        """Ask for a save-and-stop as SIGTERM does (also what a peer rank's SIGTERM means here)."""
        if self.received_at is None:
            self.received_at = time.monotonic()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received_at is not None:
            log.info("SIGTERM again: the checkpoint is already being saved")
            return
        self.request()
        if not self.training:
            raise PreemptedError("preempted (SIGTERM) before training started; nothing to save")
        log.warning("SIGTERM: saving a checkpoint at the end of this step, then stopping")
