"""What the trainer reads from the pod's environment, and the torchrun command it leads to."""

from __future__ import annotations

import pytest

from kubesft_trainer.config.runtime_env import RuntimeEnv
from kubesft_trainer.errors import ConfigError
from kubesft_trainer.launcher import torchrun_args


def test_runtime_env_reads_the_pod_environment() -> None:
    env = RuntimeEnv.from_environ(
        {
            "KUBESFT_CONFIG": "/etc/kubesft/config.yaml",
            "KUBESFT_WORK_DIR": "/var/lib/kubesft",
            "KUBESFT_GRACE_SECONDS": "300",
            "KUBESFT_NNODES": "2",
            "KUBESFT_NPROC_PER_NODE": "4",
            "KUBESFT_NODE_RANK": "1",
            "MASTER_ADDR": "job-0.job-nodes",
        }
    )
    assert env.needs_launcher and env.grace_seconds == 300.0
    args = torchrun_args(env, ["--config", "x"])
    assert args[-4:] == ["-m", "kubesft_trainer", "--config", "x"]
    assert "--standalone" not in args
    for flag, value in (("--nnodes", "2"), ("--nproc-per-node", "4"), ("--node-rank", "1")):
        assert args[args.index(flag) + 1] == value
    assert args[args.index("--master-addr") + 1] == "job-0.job-nodes"
    assert args[args.index("--shutdown-timeout") + 1] == "300"
    inside = RuntimeEnv.from_environ({"KUBESFT_NPROC_PER_NODE": "2", "TORCHELASTIC_RUN_ID": "x", "RANK": "1"})
    assert not inside.needs_launcher and not inside.is_rank_zero
    with pytest.raises(ConfigError, match="KUBESFT_NNODES='two' is not an integer"):
        RuntimeEnv.from_environ({"KUBESFT_NNODES": "two"})
