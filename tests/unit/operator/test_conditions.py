"""The conditions users see: transition times and the headline of a phase."""

from __future__ import annotations

from kubesft_api.status import Condition
from kubesft_operator.conditions import headline, set_condition


def test_condition_transition_time_moves_only_on_status_change() -> None:
    first = set_condition([], "Running", "False", "JobCreated", "m", "t1")
    same = set_condition(first, "Running", "False", "PodStarting", "m2", "t2")
    flipped = set_condition(same, "Running", "True", "Training", "m3", "t3")
    assert same[0].last_transition_time == "t1" and same[0].reason == "PodStarting"
    assert flipped[0].last_transition_time == "t3"
    ordered = set_condition(flipped, "Created", "True", "JobCreated", "", "t4")
    assert [c.type for c in ordered] == ["Created", "Running"]


def test_headline_follows_the_phase() -> None:
    conditions = [
        Condition(type="Running", status="True", reason="Training", message="m"),
        Condition(type="Suspended", status="False", reason="Suspending", message="saving"),
    ]
    assert headline("Running", conditions) == ("Running", "Suspending", "saving")
    assert headline(None, []) == ("", "", "")
