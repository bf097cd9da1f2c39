"""One pod on the process node: its sandbox and its container processes, started, restarted and
stopped as the kubelet does (pod_status.status_of reports them).

Every method runs on the node's single worker thread; that thread forks every container, so the
kernel kills containers if the node thread dies (PR_SET_PDEATHSIG in the sandbox).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes.utils import parse_quantity

from testing.devcluster import pod_status
from testing.devcluster.cgroups import CgroupTree
from testing.devcluster.container_logs import LogCopier
from testing.devcluster.containers import CommandOverride, ContainerRun
from testing.devcluster.image_mode import ImageCache, image_argv, image_env, image_plan
from testing.devcluster.image_store import LocalImage
from testing.devcluster.network import PodInterface
from testing.devcluster.pod_env import (
    ContainerConfigError,
    ImageEntrypoint,
    ObjectReader,
    container_argv,
    container_env,
)
from testing.devcluster.pod_hosts import PodAddress, pod_hostname, render_hosts
from testing.devcluster.pod_volumes import container_mounts, materialize_volumes
from testing.devcluster.processes import process_identity, wait_pids_gone
from testing.devcluster.run_state import RunState

SANDBOX = Path(__file__).with_name("sandbox.py")
START_ERROR_EXIT = 128


@dataclass
class RuntimeSettings:
    """What every pod on the node shares."""

    node_name: str
    host_ip: str
    base_env: dict[str, str]
    entrypoints: tuple[ImageEntrypoint, ...]
    overrides: list[CommandOverride]
    allocatable: dict[str, str]
    restart_backoff: float
    max_restart_backoff: float
    images: ImageCache = field(default_factory=ImageCache)
    extra_env: dict[str, str] = field(default_factory=dict)  # what the node adds in image mode too


class PodRuntime:
    def __init__(
        self,
        pod: dict[str, Any],
        pod_dir: Path,
        settings: RuntimeSettings,
        state: RunState,
        cgroups: CgroupTree,
    ) -> None:
        self.pod = pod
        self.uid: str = pod["metadata"]["uid"]
        self.namespace: str = pod["metadata"]["namespace"]
        self.name: str = pod["metadata"]["name"]
        self.dir = pod_dir
        self.settings = settings
        self.state = state
        self.cgroups = cgroups
        self.interface: PodInterface | None = None
        self.volumes: dict[str, Path] | None = None
        self.start_time = pod_status.now()
        # (reason, message) while the containers cannot be created yet; retried every second.
        self.config_error: tuple[str, str] | None = None
        self.retry_at = 0.0
        self.kill_deadline: float | None = None
        self.terminating = False
        self.failure: tuple[str, str] | None = None  # pod-level (reason, message): preemption, node loss
        self.cleaned = False
        self.hosts_text = ""
        self.dirty = True  # status differs from what was last written
        self.transitions: dict[str, tuple[str, str]] = {}
        spec = pod.get("spec") or {}
        self.restart_policy: str = spec.get("restartPolicy", "Always")
        self.init_runs = [
            ContainerRun(c, True, pod_dir / "containers" / c["name"])
            for c in spec.get("initContainers") or []
        ]
        self.runs = [
            ContainerRun(c, False, pod_dir / "containers" / c["name"]) for c in spec.get("containers") or []
        ]
        for run in [*self.init_runs, *self.runs]:
            run.directory.mkdir(parents=True, exist_ok=True)

    # -- identity ------------------------------------------------------------------------------

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def address(self) -> str | None:
        if self.host_network:
            return self.settings.host_ip
        return self.interface.address if self.interface else None

    @property
    def hosts_file(self) -> Path:
        return self.dir / "etc-hosts"

    def all_runs(self) -> list[ContainerRun]:
        return [*self.init_runs, *self.runs]

    def pids(self) -> list[int]:
        """Every live process of the pod: main processes and whatever they started."""
        found: set[int] = set()
        for run in self.all_runs():
            if run.process is not None and run.process.poll() is None:
                found.add(run.process.pid)
            if run.cgroup is not None:
                found.update(run.cgroup.pids())
        return sorted(found)

    # -- start ---------------------------------------------------------------------------------

    def prepare(self, reader: ObjectReader, claim_dir: Any, network: Any) -> None:
        """Volumes first (they may be missing, which keeps the pod waiting), then the network."""
        if self.volumes is None:
            self.volumes = materialize_volumes(self.pod, reader, self.dir, claim_dir)
        if self.interface is None and network is not None and not self.host_network:
            self.interface = network.attach()
        if not self.hosts_file.exists():
            # The node adds peers later; the pod's own names must resolve from its first instruction.
            self.hosts_text = render_hosts(self.own_address(), [])
            self.hosts_file.write_text(self.hosts_text)

    @property
    def host_network(self) -> bool:
        return bool((self.pod.get("spec") or {}).get("hostNetwork"))

    def own_address(self) -> PodAddress:
        spec = self.pod.get("spec") or {}
        return PodAddress(
            namespace=self.namespace,
            name=self.name,
            hostname=pod_hostname(self.pod),
            subdomain=spec.get("subdomain"),
            labels=self.pod["metadata"].get("labels") or {},
            address=self.address or self.settings.host_ip,
        )

    def _argv(self, run: ContainerRun, env: Mapping[str, str], image: LocalImage | None) -> list[str]:
        for override in self.settings.overrides:
            if override.matches(self.pod, run.spec):
                return list(override.command)
        if image is not None:
            return image_argv(run.spec, env, image)
        return container_argv(run.spec, env, self.settings.entrypoints)

    def _pod_for_fields(self) -> dict[str, Any]:
        status = dict(self.pod.get("status") or {})
        status.update(
            {
                "hostIP": self.settings.host_ip,
                "podIP": self.address,
                "podIPs": [{"ip": self.address}] if self.address else [],
            }
        )
        spec = dict(self.pod.get("spec") or {})
        spec["nodeName"] = self.settings.node_name
        return {**self.pod, "status": status, "spec": spec}

    def launch(self, run: ContainerRun, reader: ObjectReader) -> None:
        """Start one container process. Raises ContainerConfigError when its env cannot be built."""
        overridden = any(o.matches(self.pod, run.spec) for o in self.settings.overrides)
        image = None if overridden else self.settings.images.find(run.spec.get("image", ""))
        base_env = image_env(image, self.settings.extra_env) if image else dict(self.settings.base_env)
        base_env["HOSTNAME"] = self.hostname
        env = container_env(self._pod_for_fields(), run.spec, reader, base_env, self.settings.allocatable)
        argv = self._argv(run, env, image)
        mounts = container_mounts(run.spec, self.volumes or {})
        image_fields, image_mounts = image_plan(self.pod, run.spec, run.directory, image)
        mounts += image_mounts
        run.termination_file.write_bytes(b"")
        run.termination_file.chmod(0o666)
        run.start_error_file.unlink(missing_ok=True)
        mounts.append(
            {
                "source": str(run.termination_file),
                "target": run.spec.get("terminationMessagePath") or "/dev/termination-log",
                "readOnly": False,
            }
        )
        mounts.append({"source": str(self.hosts_file), "target": "/etc/hosts", "readOnly": False})
        run.cgroup = self.cgroups.container(self.uid, run.name, run.restart_count)
        if run.cgroup is not None:
            self.state.remember("cgroups", str(run.cgroup.path))
            limit = ((run.spec.get("resources") or {}).get("limits") or {}).get("memory")
            if limit:
                run.cgroup.set_memory_limit(int(parse_quantity(limit)))
        plan = {
            "podDir": str(self.dir / "containers" / run.name),
            "parentPid": os.getpid(),
            "cgroupProcs": str(run.cgroup.procs_file) if run.cgroup else None,
            "netns": str(self.interface.netns_path) if self.interface and not self.host_network else None,
            "hostname": self.hostname,
            "mounts": mounts,
            "workingDir": run.spec.get("workingDir"),
            "argv": argv,
            "env": env,
            "createdPathsFile": str(self.dir / "created-paths"),
            "startErrorFile": str(run.start_error_file),
            **image_fields,
        }
        plan_file = run.directory / f"plan-{run.restart_count}.json"
        plan_file.write_text(json.dumps(plan))
        run.process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(SANDBOX), str(plan_file)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
        assert run.process.stdout is not None
        run.log_copier = LogCopier(run.process.stdout, run.log_path())
        self.state.remember_process(run.process.pid)
        run.started_at = pod_status.now()
        run.state = pod_status.running(run.started_at)
        run.restart_at = None
        self.dirty = True

    @property
    def hostname(self) -> str:
        return pod_hostname(self.pod)

    # -- progress ------------------------------------------------------------------------------

    def step(self, reader: ObjectReader, claim_dir: Any, network: Any) -> bool:
        """Advance the pod: start what is due, collect what exited. Returns True if status changed."""
        # A config error stays in the status until the next try, as the kubelet keeps it.
        retry_due = self.config_error is None or time.monotonic() >= self.retry_at
        if self.failure is None and not self.terminating and retry_due:
            previous_error = self.config_error
            try:
                self._start_due(reader, claim_dir, network)
                self.config_error = None
            except ContainerConfigError as err:
                self.config_error = ("CreateContainerConfigError", str(err))
                self.retry_at = time.monotonic() + 1.0
            except OSError as err:
                # The sandbox could not be made (network, files): the kubelet retries these too.
                self.config_error = ("CreateContainerError", f"{type(err).__name__}: {err}")
                self.retry_at = time.monotonic() + 1.0
            if self.config_error != previous_error:
                self.dirty = True
        for run in self.all_runs():
            self._collect(run)
        if self.kill_deadline is not None and time.monotonic() >= self.kill_deadline:
            self.kill(signal.SIGKILL)
            self.kill_deadline = None
        changed, self.dirty = self.dirty, False
        return changed

    def _start_due(self, reader: ObjectReader, claim_dir: Any, network: Any) -> None:
        now = time.monotonic()
        due = [
            r
            for r in self.all_runs()
            if r.process is None and not r.done and (r.restart_at is None or r.restart_at <= now)
        ]
        if not due:
            return
        self.prepare(reader, claim_dir, network)
        pending_init = next((r for r in self.init_runs if not (r.done and r.succeeded)), None)
        if pending_init is not None:
            if pending_init.process is None and pending_init in due:
                self.launch(pending_init, reader)
            return
        for run in self.runs:
            if run in due:
                self.launch(run, reader)

    def _collect(self, run: ContainerRun) -> None:
        if run.process is None:
            return
        code = run.process.poll()
        if code is None:
            return
        self.dirty = True
        exit_code = code if code >= 0 else 128 - code
        # The container's other processes go with its main process, as in a PID namespace.
        if run.cgroup is not None:
            run.cgroup.kill()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(run.process.pid, signal.SIGKILL)
        if run.log_copier is not None:
            run.log_copier.wait(timeout=5)
        message: str | None
        start_error = run.start_error_file.read_text() if run.start_error_file.exists() else ""
        if start_error:
            reason, message = "StartError", start_error
        else:
            oom = run.cgroup is not None and exit_code == 137 and run.cgroup.oom_killed()
            reason = "OOMKilled" if oom else ("Completed" if exit_code == 0 else "Error")
            message = run.termination_message(exit_code)
        run.state = pod_status.terminated(
            exit_code, reason, run.started_at, pod_status.now(), message, f"process://{run.process.pid}"
        )
        if run.cgroup is not None:
            wait_pids_gone(run.cgroup.pids(), 2.0)
            run.cgroup.remove()
            self.state.forget("cgroups", str(run.cgroup.path))
        identity = process_identity(run.process.pid)
        self.state.forget("pids", list(identity) if identity else [run.process.pid, 0])
        run.process = None
        restart = (
            not self.terminating
            and self.failure is None
            and (self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and exit_code != 0))
        )
        if run.init and exit_code == 0:
            restart = False
        if run.init and exit_code != 0 and not restart:
            # A failed init container that is not restarted means the app containers never run.
            for other in self.runs:
                other.done = True
        if restart:
            backoff = min(
                self.settings.restart_backoff * 2**run.restart_count, self.settings.max_restart_backoff
            )
            run.last_state = run.state
            run.restart_count += 1
            run.restart_at = time.monotonic() + backoff
            run.state = pod_status.waiting(
                "CrashLoopBackOff" if exit_code else "Completed",
                f"back-off {backoff:.0f}s restarting failed container",
            )
        else:
            run.done = True

    # -- stop ----------------------------------------------------------------------------------

    def kill(self, sig: int) -> None:
        """``sig`` to every container: SIGTERM to main processes (as the kubelet does), SIGKILL to all."""
        for run in self.all_runs():
            run.kill(sig)

    def begin_termination(self, grace: float) -> None:
        if self.terminating:
            return
        self.terminating = True
        for run in self.all_runs():
            run.restart_at = None
            if run.process is None:
                run.done = True
        if grace <= 0:
            self.kill(signal.SIGKILL)
        else:
            self.kill(signal.SIGTERM)
            self.kill_deadline = time.monotonic() + grace

    def fail(self, reason: str, message: str, grace: float | None = None) -> None:
        """End the pod as Failed with a pod-level reason (preemption, node loss)."""
        self.failure = (reason, message)
        self.dirty = True
        self.begin_termination(0 if grace is None else grace)

    def finished(self) -> bool:
        """No process runs and none will start again."""
        return all(r.process is None and r.done for r in self.all_runs())

    def cleanup(self, network: Any) -> None:
        """Kill whatever is left, free the network and remove the volumes (logs stay)."""
        if self.cleaned:
            return
        self.kill(signal.SIGKILL)
        for run in self.all_runs():
            if run.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    run.process.wait(timeout=5)
                self._collect(run)
        if self.interface is not None and network is not None:
            network.detach(self.interface)
        shutil.rmtree(self.dir / "volumes", ignore_errors=True)
        created = self.dir / "created-paths"
        for path in set(created.read_text().split()) if created.exists() else ():
            self.state.remember("paths", path)
        self.cleaned = True
