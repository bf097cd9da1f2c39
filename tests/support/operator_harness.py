"""The operator under the chart's RBAC for the e2e tests; it lives in hack/local_operator.py,
which the benchmarks and ``make demo`` share."""

from __future__ import annotations

from testing.devcluster.operator_install import (
    RBAC_KINDS,
    SETUP_KINDS,
    OperatorInstall,
    OperatorProcess,
    next_peering_priority,
    running_operator,
    wait_for_phase,
)

__all__ = [
    "RBAC_KINDS",
    "SETUP_KINDS",
    "OperatorInstall",
    "OperatorProcess",
    "next_peering_priority",
    "running_operator",
    "wait_for_phase",
]
