"""The trainer's exit codes: the contract the operator uses to decide whether to retry.

| code | meaning                                                        | operator        |
|------|----------------------------------------------------------------|-----------------|
| 0    | trained, outputs written, all uploads finished                 | Succeeded       |
| 1    | runtime failure (crash, storage error at the end, NCCL, …)     | retry           |
| 64   | invalid config (the SFTJob spec or extraArgs)                  | Failed, no retry|
| 65   | invalid data or model (bad rows, missing files, bad template)  | Failed, no retry|
| 69   | model unavailable (--validate: not found, no access, no network)| Failed, no retry|
| 74   | storage unavailable (--validate: a URI cannot be written)      | Failed, no retry|
| 75   | preempted: SIGTERM received, checkpoint saved and uploaded     | retry / suspend |

Codes 128+N mean the process died of signal N (137: SIGKILL, e.g. OOM or node loss) and are
retried, except when Kubernetes reports OOMKilled.
"""

from __future__ import annotations

SUCCESS = 0
RUNTIME_FAILURE = 1
INVALID_CONFIG = 64
INVALID_DATA = 65
MODEL_UNAVAILABLE = 69
STORAGE_UNAVAILABLE = 74
PREEMPTED = 75

PERMANENT_EXIT_CODES = frozenset({INVALID_CONFIG, INVALID_DATA, MODEL_UNAVAILABLE, STORAGE_UNAVAILABLE})
"""Exit codes that retrying cannot fix."""


def is_permanent(exit_code: int) -> bool:
    """Whether a trainer exit code means the job must fail without a retry."""
    return exit_code in PERMANENT_EXIT_CODES
