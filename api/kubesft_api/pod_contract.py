"""What a trainer pod and the trainer agree on: ports, mount paths and environment variables.

The operator renders the pod from these and the trainer reads them, so the two images must come
from the same kubesft version.
"""

from __future__ import annotations

TRAINER_METRICS_PORT = 9090
"""Port of the trainer's ``/metrics`` and ``/progress`` (served by rank 0)."""
RENDEZVOUS_PORT = 29500
"""torch.distributed rendezvous port of rank 0."""
METRICS_PATH = "/metrics"
PROGRESS_PATH = "/progress"
"""The ``ProgressReport`` JSON the operator copies into ``status.progress``."""

CONFIG_DIR = "/etc/kubesft"
"""Where the job's ConfigMap is mounted, read-only."""
CONFIG_KEY = "config.yaml"
"""Key of the trainer config in that ConfigMap."""
CONFIG_PATH = f"{CONFIG_DIR}/{CONFIG_KEY}"
WORK_DIR = "/var/lib/kubesft"
"""A writable emptyDir: caches, staging and local checkpoints (the root filesystem is read-only)."""
HF_HOME = f"{WORK_DIR}/hf"
TMP_DIR = "/tmp"
SHM_DIR = "/dev/shm"
PVC_ROOT = "/mnt/pvc"
"""Every claim a ``pvc://claim/path`` URI names is mounted at ``PVC_ROOT/claim``."""
TERMINATION_LOG = "/dev/termination-log"
"""Where a failing trainer writes its one-line reason."""

ENV_PREFIX = "KUBESFT_"
"""Variables with this prefix are kubesft's own; ``resources.env`` may not set them."""
ENV_CONFIG = "KUBESFT_CONFIG"
ENV_METRICS_PORT = "KUBESFT_METRICS_PORT"
ENV_JOB_NAME = "KUBESFT_JOB_NAME"
ENV_NAMESPACE = "KUBESFT_NAMESPACE"
ENV_WORK_DIR = "KUBESFT_WORK_DIR"
ENV_GRACE_SECONDS = "KUBESFT_GRACE_SECONDS"
ENV_NNODES = "KUBESFT_NNODES"
ENV_NPROC_PER_NODE = "KUBESFT_NPROC_PER_NODE"
ENV_NODE_RANK = "KUBESFT_NODE_RANK"
ENV_MASTER_ADDR = "MASTER_ADDR"
ENV_MASTER_PORT = "MASTER_PORT"
ENV_HF_HOME = "HF_HOME"
ENV_HOME = "HOME"
ENV_HF_TOKEN = "HF_TOKEN"

OPERATOR_ENV = frozenset({ENV_MASTER_ADDR, ENV_MASTER_PORT, ENV_HF_HOME, ENV_HOME})
"""Variables without the prefix that the operator sets on every trainer pod."""


def pvc_mount_path(claim: str) -> str:
    """Where the PersistentVolumeClaim ``claim`` is mounted in a trainer pod."""
    return f"{PVC_ROOT}/{claim}"


def is_operator_env(name: str) -> bool:
    """Whether the operator sets (or reserves) the variable ``name``, so a spec may not."""
    return name.startswith(ENV_PREFIX) or name in OPERATOR_ENV
