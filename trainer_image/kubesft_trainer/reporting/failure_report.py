"""The one-line reason a failed trainer leaves for the operator: last stderr line and termination log."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TextIO

from kubesft_api import pod_contract

TERMINATION_LOG = Path(pod_contract.TERMINATION_LOG)
ERROR_PREFIX = "kubesft: error: "
WARNING_PREFIX = pod_contract.TRAINER_WARNING_PREFIX
MAX_REASON_CHARS = 3500
"""Kubernetes keeps 4096 bytes of termination message; leave room for multi-byte characters."""


def one_line(reason: str) -> str:
    line = " ".join(reason.split())
    return line if len(line) <= MAX_REASON_CHARS else line[: MAX_REASON_CHARS - 1] + "…"


def report_failure(
    reason: str,
    termination_log: Path = TERMINATION_LOG,
    stream: TextIO | None = None,
    prefix: str = ERROR_PREFIX,
) -> str:
    """Write ``reason`` as one line to the termination log (when Kubernetes provides it) and stderr.

    A finished run reports a warning the same way (``prefix`` WARNING_PREFIX, the reason first).
    """
    line = one_line(reason)
    # Only a file that already exists: outside a pod, /dev must not gain one.
    if termination_log.is_file() and os.access(termination_log, os.W_OK):
        with contextlib.suppress(OSError):
            termination_log.write_text(line + "\n")
    stream = stream or sys.stderr
    stream.flush()
    print(prefix + line, file=stream, flush=True)
    return line
