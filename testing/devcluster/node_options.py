"""How a process node is set up: its name, the commands and environment its containers get,
restart back-off, and whether pods get their own network."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from testing.devcluster.containers import CommandOverride
from testing.devcluster.image_mode import ImageCache
from testing.devcluster.pod_env import DEFAULT_ENTRYPOINTS, ImageEntrypoint
from testing.devcluster.pod_runtime import RuntimeSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def venv_bin() -> Path:
    """The project's virtual environment: what a container image's Python stands for."""
    candidate = REPO_ROOT / ".venv" / "bin"
    return candidate if (candidate / "python").exists() else Path(sys.executable).parent


@dataclass
class NodeOptions:
    name: str = "devcluster-node"
    # Image -> entrypoint for containers that set no command (the image is never pulled).
    entrypoints: tuple[ImageEntrypoint, ...] = DEFAULT_ENTRYPOINTS
    # Harness option: stand-in commands for matching containers (e.g. a scale benchmark).
    command_overrides: list[CommandOverride] = field(default_factory=list)
    # Added to every container's environment before the pod's own env.
    extra_env: dict[str, str] = field(default_factory=dict)
    # The kubelet waits 10 s doubling to 5 min before restarting a container; tests need less.
    restart_backoff: float = 1.0
    max_restart_backoff: float = 10.0
    pod_network: bool = True
    # Extended resources the node advertises beside its CPUs and memory, so that quotas and
    # requests can be GPU ones; pods that ask for them run on the CPU.
    extended_resources: dict[str, str] = field(default_factory=lambda: {"nvidia.com/gpu": "2"})
    # Containers whose image is in the local image store (``make images``) run inside it.
    image_mode: bool = True
    # Harness option: the Node is cordoned (spec.unschedulable), so no pod is bound or run; each
    # stays Pending with the PodScheduled condition kube-scheduler gives it (a full cluster).
    cordoned: bool = False

    def runtime_settings(self, host_ip: str, allocatable: dict[str, str]) -> RuntimeSettings:
        """What every pod on the node shares, once the node knows its address and size."""
        env = {
            "PATH": f"{venv_bin()}:{SYSTEM_PATH}",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            **self.extra_env,
        }
        return RuntimeSettings(
            node_name=self.name,
            host_ip=host_ip,
            base_env=env,
            entrypoints=self.entrypoints,
            overrides=self.command_overrides,
            allocatable=allocatable,
            restart_backoff=self.restart_backoff,
            max_restart_backoff=self.max_restart_backoff,
            images=ImageCache(self.image_mode),
            extra_env=dict(self.extra_env),
        )
