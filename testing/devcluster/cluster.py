"""The whole local cluster: control plane, process node and S3, started and stopped together."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testing.devcluster.control_plane import AuditLog, ControlPlane, ControlPlaneConfig
from testing.devcluster.kube import Kube
from testing.devcluster.kubelet_server import KubeletTls
from testing.devcluster.kueue import Kueue
from testing.devcluster.node import ProcessNode
from testing.devcluster.node_options import NodeOptions
from testing.devcluster.run_state import RunState
from testing.devcluster.s3 import S3Kind, S3Server

# Requests of ServiceAccounts are logged with their verb and resource, so a test can check which
# permissions a component actually used; everything else (admin, controllers) is not logged.
SERVICE_ACCOUNT_AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "Metadata", "userGroups": ["system:serviceaccounts"]},
        {"level": "None"},
    ],
}


@dataclass
class ClusterOptions:
    """How to start the cluster; the defaults are what the test suite uses."""

    audit_policy: dict[str, Any] | None = field(default_factory=lambda: dict(SERVICE_ACCOUNT_AUDIT_POLICY))
    extra_apiserver_flags: list[str] = field(default_factory=list)
    node: NodeOptions = field(default_factory=NodeOptions)


class Cluster:
    """A running local cluster. Use ``Cluster.start()``; ``stop()`` removes every trace of it."""

    def __init__(self, state: RunState, control_plane: ControlPlane, node: ProcessNode) -> None:
        self.state = state
        self.control_plane = control_plane
        self.node = node
        self.kube = Kube(control_plane.admin_kubeconfig)
        self._s3: S3Server | None = None
        self._kueue: Kueue | None = None

    @classmethod
    def start(cls, options: ClusterOptions | None = None) -> Cluster:
        """Start control plane and node. Call it from a thread that outlives the cluster (the main
        thread): the control-plane processes are tied to it and die if it dies."""
        options = options or ClusterOptions()
        state = RunState.create()
        audit = None
        if options.audit_policy is not None:
            policy_file = state.directory / "audit-policy.yaml"
            policy_file.write_text(yaml.safe_dump(options.audit_policy))
            audit = AuditLog(policy_file=policy_file, log_path=state.directory / "audit" / "audit.log")
        control_plane = ControlPlane(
            state, ControlPlaneConfig(audit=audit, extra_apiserver_flags=options.extra_apiserver_flags)
        )
        node: ProcessNode | None = None
        try:
            control_plane.start()
            kube = Kube(control_plane.admin_kubeconfig)
            tls = KubeletTls(control_plane.ca_cert, control_plane.issue_node_serving)
            node = ProcessNode(kube.api, state, options.node, tls)
            node.start()
            return cls(state, control_plane, node)
        except BaseException:
            _stop_all(state, control_plane, node)
            raise

    def stop(self) -> None:
        """Stop pods, node, control plane; then remove every namespace, link, cgroup and file made."""
        try:
            if self._kueue is not None:
                self._kueue.stop()
            if self._s3 is not None:
                self._s3.stop()
        finally:
            _stop_all(self.state, self.control_plane, self.node)

    def start_s3(self, kind: S3Kind = "moto") -> S3Server:
        """An S3 server (moto's unless ``kind`` says otherwise) on the node bridge's address
        (reachable from the host and pods), with an empty bucket; started on first call, stopped
        with the cluster."""
        if self._s3 is None:
            server = S3Server(self.state, self.node.host_ip, kind=kind)
            try:
                server.start()
            except BaseException:
                server.stop()
                raise
            self._s3 = server
        return self._s3

    def start_kueue(self) -> Kueue:
        """Kueue's controller manager with its CRDs, RBAC and webhooks (testing/devcluster/kueue.py);
        started on first call, stopped with the cluster."""
        if self._kueue is None:
            kueue = Kueue(self.state, self.control_plane, self.node.host_ip)
            try:
                kueue.start()
            except BaseException:
                kueue.stop()
                raise
            self._kueue = kueue
        return self._kueue

    # -- identities ----------------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (group system:masters)."""
        return self.control_plane.admin_kubeconfig

    @property
    def server(self) -> str:
        return self.control_plane.server

    @property
    def ca_cert(self) -> Path:
        return self.control_plane.ca_cert

    @property
    def startup_seconds(self) -> float:
        return self.control_plane.startup_seconds

    def kubeconfig_for(
        self, user: str, groups: tuple[str, ...] | list[str] = (), *, namespace: str = "default"
    ) -> Path:
        return self.control_plane.kubeconfig_for(user, groups, namespace=namespace)

    def kubeconfig_for_service_account(self, namespace: str, name: str) -> Path:
        return self.control_plane.kubeconfig_for_service_account(namespace, name)

    # -- audit -----------------------------------------------------------------------------------

    @property
    def audit_log(self) -> Path | None:
        audit = self.control_plane.config.audit
        return audit.log_path if audit is not None else None

    def audit_events(self, user: str | None = None) -> list[dict[str, Any]]:
        """Audit events logged so far, optionally only those of ``user``."""
        if self.audit_log is None or not self.audit_log.exists():
            return []
        events = [json.loads(line) for line in self.audit_log.read_text().splitlines() if line.strip()]
        return [e for e in events if user is None or e.get("user", {}).get("username") == user]

    # -- tools -----------------------------------------------------------------------------------

    def kubectl(
        self, *args: str, kubeconfig: Path | None = None, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run /usr/bin/kubectl against this cluster (admin unless ``kubeconfig`` is given)."""
        result = subprocess.run(
            ["kubectl", f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result


def _stop_all(state: RunState, control_plane: ControlPlane, node: ProcessNode | None) -> None:
    try:
        if node is not None:
            node.stop()
    finally:
        try:
            control_plane.stop()
        finally:
            state.clean_up()
