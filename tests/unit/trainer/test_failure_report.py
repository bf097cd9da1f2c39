"""The failure reason: one line on stderr and in the termination log the operator reads."""

from __future__ import annotations

import io
from pathlib import Path

from kubesft_trainer.reporting.failure_report import ERROR_PREFIX, report_failure


def test_failure_reason_is_one_line_on_stderr_and_in_an_existing_termination_log(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    log.write_text("")
    stream = io.StringIO()
    report_failure("dataset row 3:\n  role is 'bot'", termination_log=log, stream=stream)
    assert stream.getvalue().splitlines()[-1] == ERROR_PREFIX + "dataset row 3: role is 'bot'"
    assert log.read_text() == "dataset row 3: role is 'bot'\n"
    absent = tmp_path / "absent"
    report_failure("x", termination_log=absent, stream=io.StringIO())
    assert not absent.exists()
