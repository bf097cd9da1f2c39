"""How a passed validation reports: readable lines on stdout, and one JSON line the operator reads
from the pod's termination message."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TextIO

from kubesft_api.validation_stage import REPORT_PREFIX
from kubesft_trainer.reporting.failure_report import TERMINATION_LOG
from kubesft_trainer.validation.run import Validated


def report_validation(
    validated: Validated, termination_log: Path = TERMINATION_LOG, stream: TextIO | None = None
) -> str:
    """Print ``validated`` and its report line; write the line to the termination log in a pod."""
    line = REPORT_PREFIX + validated.report.model_dump_json(by_alias=True, exclude_none=True)
    # Only a file that already exists: outside a pod, /dev must not gain one.
    if termination_log.is_file() and os.access(termination_log, os.W_OK):
        with contextlib.suppress(OSError):
            termination_log.write_text(line + "\n")
    stream = stream or sys.stdout
    print(validated.text(), file=stream)
    print(line, file=stream, flush=True)
    return line
