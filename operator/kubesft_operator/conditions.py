"""The conditions that tell users what an SFTJob is doing: set, dropped and read, and the one that
explains the phase.
"""

from __future__ import annotations

from typing import Literal, get_args

from kubesft_api.status import Condition, ConditionType, Phase
from kubesft_operator.attempts import MAX_MESSAGE


def set_condition(
    conditions: list[Condition],
    kind: ConditionType,
    status: Literal["True", "False", "Unknown"],
    reason: str,
    message: str,
    now: str,
) -> list[Condition]:
    """``conditions`` with ``kind`` set; the transition time moves only when status changes."""
    out = [c for c in conditions if c.type != kind]
    previous = next((c for c in conditions if c.type == kind), None)
    moved = previous is None or previous.status != status
    out.append(
        Condition(
            type=kind,
            status=status,
            reason=reason,
            message=message[:MAX_MESSAGE],
            last_transition_time=now if moved or previous is None else previous.last_transition_time,
        )
    )
    order: list[ConditionType] = list(get_args(ConditionType))
    return sorted(out, key=lambda c: order.index(c.type))


def drop_condition(conditions: list[Condition], kind: ConditionType) -> list[Condition]:
    return [c for c in conditions if c.type != kind]


def get_condition(conditions: list[Condition], kind: ConditionType) -> Condition | None:
    return next((c for c in conditions if c.type == kind), None)


HEADLINE_CONDITION: dict[Phase, ConditionType] = {
    "Pending": "Running",
    "Validating": "Validated",
    "Running": "Running",
    "Suspended": "Suspended",
    "Succeeded": "Succeeded",
    "Failed": "Failed",
}


def headline(phase: Phase | None, conditions: list[Condition]) -> tuple[str, str, str]:
    """(phase, reason, message) of the condition that explains the phase; events follow it."""
    if phase is None:
        return ("", "", "")
    suspending = get_condition(conditions, "Suspended")
    if phase == "Running" and suspending is not None and suspending.reason == "Suspending":
        return (phase, suspending.reason, suspending.message)
    condition = get_condition(conditions, HEADLINE_CONDITION[phase])
    if condition is None:
        return (phase, "", "")
    return (phase, condition.reason, condition.message)
