"""What a trainer pod and the trainer agree on: ports, mount paths and environment variables.

The operator renders the pod from these and the trainer reads them, so the two images must come
from the same kubesft version.
"""

from __future__ import annotations

GROUP = "kubesft.io"
"""The SFTJob API group; it also prefixes kubesft's labels and annotations."""

LABEL_JOB = f"{GROUP}/job"
"""On everything an SFTJob owns, trainer pods included: the SFTJob's name."""
LABEL_ATTEMPT = f"{GROUP}/attempt"
"""On a trainer Job and its pods: the attempt number."""
ANNOTATION_COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
"""On each pod of an Indexed (multi-node) Job: its node rank."""
CONTAINER_NAME = "trainer"
"""The trainer pod's container that runs the trainer (and holds its log)."""

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
ENV_JOB_UID = "KUBESFT_JOB_UID"
"""The SFTJob's uid: with its namespace and name, the job identity a checkpoint manifest records."""
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
LAUNCHER_ENV = frozenset({"RANK", "WORLD_SIZE", "LOCAL_RANK"})
"""Variables torchrun sets for each training process; a value from the spec would misplace it."""
LAUNCHER_ENV_PREFIX = "TORCHELASTIC_"
RESERVED_PREFIXES = (ENV_PREFIX, LAUNCHER_ENV_PREFIX)
ENV_FROM_RESERVED = (
    *sorted(LAUNCHER_ENV | {ENV_MASTER_ADDR, ENV_MASTER_PORT}),
    "KUBESFT_*",
    "TORCHELASTIC_*",
)
"""What an ``envFrom`` prefix must not be able to form with a key. The operator's own ``env``
entries would win over ``envFrom`` anyway; these names would still misplace a training process."""


def pvc_mount_path(claim: str) -> str:
    """Where the PersistentVolumeClaim ``claim`` is mounted in a trainer pod."""
    return f"{PVC_ROOT}/{claim}"


def is_operator_env(name: str) -> bool:
    """Whether the operator sets (or reserves) the variable ``name``, so a spec may not."""
    return name.startswith(ENV_PREFIX) or name in OPERATOR_ENV


def reserved_env_problem(name: str) -> str | None:
    """Why a spec may not set the variable ``name``, or None when it may."""
    if is_operator_env(name):
        return f"{name} is set by kubesft and cannot be overridden"
    if name in LAUNCHER_ENV or name.startswith(LAUNCHER_ENV_PREFIX):
        return f"{name} is set by torchrun for each training process and cannot be set here"
    return None


def reserved_prefix_problem(prefix: str) -> str | None:
    """Why an ``envFrom`` prefix is refused: some key of the Secret or ConfigMap would then make a
    variable kubesft or torchrun reserves. None when no key can."""
    if not prefix:
        return None
    for reserved in RESERVED_PREFIXES:
        if prefix.startswith(reserved):
            return f"{prefix} makes every variable start with {reserved}, which kubesft reserves"
    for reserved in ENV_FROM_RESERVED:
        if reserved.startswith(prefix):
            return f"{prefix} followed by a key could make {reserved}, which kubesft reserves; choose another prefix"
    return None
