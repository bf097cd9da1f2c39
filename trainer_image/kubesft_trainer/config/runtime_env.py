"""What the pod tells the trainer through its environment (set by the operator and by torchrun)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kubesft_api import pod_contract
from kubesft_api.integers import int_or
from kubesft_trainer.errors import ConfigError

DEFAULT_GRACE_SECONDS = 30.0


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name)
    try:
        value = int_or(raw, default, strict=True)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be ≥ {minimum}")
    return value


@dataclass(frozen=True)
class RuntimeEnv:
    """The trainer pod's ``KUBESFT_*`` settings and the process's place in a distributed run."""

    config_path: Path | None
    work_dir: Path
    metrics_port: int
    job_name: str | None
    namespace: str | None
    job_uid: str | None
    grace_seconds: float
    nnodes: int
    nproc_per_node: int
    node_rank: int
    master_addr: str
    master_port: int
    rank: int
    local_rank: int
    world_size: int
    launched_by_torchrun: bool

    @property
    def needs_launcher(self) -> bool:
        """More than one process is wanted and this process was not started by torchrun."""
        return not self.launched_by_torchrun and self.nnodes * self.nproc_per_node > 1

    @property
    def is_rank_zero(self) -> bool:
        return self.rank == 0

    @property
    def hf_token(self) -> str | None:
        return os.environ.get(pod_contract.ENV_HF_TOKEN) or None

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None) -> RuntimeEnv:
        env = os.environ if env is None else env
        config = env.get(pod_contract.ENV_CONFIG)
        work_dir = env.get(pod_contract.ENV_WORK_DIR) or str(Path(tempfile.gettempdir()) / "kubesft")
        raw_grace = env.get(pod_contract.ENV_GRACE_SECONDS) or str(DEFAULT_GRACE_SECONDS)
        try:
            grace = float(raw_grace)
        except ValueError:
            raise ConfigError(f"{pod_contract.ENV_GRACE_SECONDS}={raw_grace!r} is not a number") from None
        return cls(
            config_path=Path(config) if config else None,
            work_dir=Path(work_dir),
            metrics_port=_int(env, pod_contract.ENV_METRICS_PORT, pod_contract.TRAINER_METRICS_PORT, 0),
            job_name=env.get(pod_contract.ENV_JOB_NAME) or None,
            namespace=env.get(pod_contract.ENV_NAMESPACE) or None,
            job_uid=env.get(pod_contract.ENV_JOB_UID) or None,
            grace_seconds=grace,
            nnodes=_int(env, pod_contract.ENV_NNODES, 1, 1),
            nproc_per_node=_int(env, pod_contract.ENV_NPROC_PER_NODE, 1, 1),
            node_rank=_int(env, pod_contract.ENV_NODE_RANK, 0, 0),
            master_addr=env.get(pod_contract.ENV_MASTER_ADDR) or "127.0.0.1",
            master_port=_int(env, pod_contract.ENV_MASTER_PORT, pod_contract.RENDEZVOUS_PORT, 1),
            rank=_int(env, "RANK", 0, 0),
            local_rank=_int(env, "LOCAL_RANK", 0, 0),
            world_size=_int(env, "WORLD_SIZE", 1, 1),
            launched_by_torchrun="TORCHELASTIC_RUN_ID" in env,
        )
