"""etcd + kube-apiserver + kube-controller-manager on free loopback ports.

Authentication: client certificates signed by the cluster CA (any user, any groups, minted at
run time) and a static admin bearer token. Authorization: RBAC only. Pods get no
ServiceAccount token (the ServiceAccount admission plug-in is off), so pods cannot reach the API.

The apiserver reaches the node's kubelet endpoint (pods/log) at the node's InternalIP, checks
its serving certificate against the cluster CA and shows it a client certificate of its own, as
kubeadm sets a cluster up.
"""

from __future__ import annotations

import http.client
import secrets
import shutil
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

from testing.devcluster.binaries import etcd_binary, kubernetes_binary
from testing.devcluster.kubeconfig import write_kubeconfig
from testing.devcluster.pki import CertificateAuthority, CertificatePair, write_signing_key
from testing.devcluster.processes import ManagedProcess, free_port, process_identity
from testing.devcluster.run_state import RunState

ADMIN_USER = "kubesft-admin"
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"
"""Who the apiserver is to a kubelet; the node asks RBAC whether it may read logs."""
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
# Controllers that make Jobs work: Pods for Jobs, cascading deletion, namespace deletion, TTL
# cleanup, and Endpoints and EndpointSlices (the apiserver resolves a webhook Service backed by
# a pod through its EndpointSlices).
CONTROLLERS = "job,namespace,garbagecollector,ttl-after-finished,endpoint,endpointslice"


class ControlPlaneError(RuntimeError):
    """A control-plane process failed to start or exited; the message carries its log tail."""


@dataclass
class AuditLog:
    """Apiserver audit settings: a policy file in, a JSON-lines log out."""

    policy_file: Path
    log_path: Path


@dataclass
class ControlPlaneConfig:
    audit: AuditLog | None = None
    extra_apiserver_flags: list[str] = field(default_factory=list)
    start_timeout: float = 60.0


class ControlPlane:
    """The API server side of the local cluster, living in ``state.directory``."""

    def __init__(self, state: RunState, config: ControlPlaneConfig | None = None) -> None:
        self.state = state
        self.config = config or ControlPlaneConfig()
        self.directory = state.directory / "control-plane"
        self.pki_dir = self.directory / "pki"
        self.kubeconfig_dir = self.directory / "kubeconfigs"
        self.processes: list[ManagedProcess] = []
        self.admin_token = secrets.token_hex(16)
        self.api_port = 0
        self.startup_seconds = 0.0
        self._ca: CertificateAuthority | None = None
        self._etcd_dir: Path | None = None

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def ca_cert(self) -> Path:
        return self.pki_dir / "ca.crt"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.kubeconfig_dir / "admin.kubeconfig"

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        began = time.monotonic()
        etcd_bin = etcd_binary()
        apiserver_bin = kubernetes_binary("kube-apiserver")
        controller_manager_bin = kubernetes_binary("kube-controller-manager")
        self._ca = CertificateAuthority(self.pki_dir)
        signing = write_signing_key(self.pki_dir)
        tokens = self.pki_dir / "tokens.csv"
        tokens.write_text(f"{self.admin_token},{ADMIN_USER}-token,admin-token,system:masters\n")
        tokens.chmod(0o600)
        self.api_port = free_port()
        serving = self._ca.issue(
            "apiserver",
            "kube-apiserver",
            dns_names=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
            ip_addresses=("127.0.0.1", "10.0.0.1"),
            server=True,
        )
        admin = self._ca.issue("admin", ADMIN_USER, organizations=("system:masters",))
        kubelet_client = self._ca.issue(
            "apiserver-kubelet-client", KUBELET_CLIENT_USER, organizations=("system:masters",)
        )
        write_kubeconfig(
            self.admin_kubeconfig, server=self.server, ca_cert=self.ca_cert, user=ADMIN_USER, client=admin
        )

        self._etcd_dir = self._etcd_data_dir()
        etcd_client = free_port()
        etcd_peer = free_port()
        etcd = self._spawn(
            "etcd",
            [
                str(etcd_bin),
                "--name=devcluster",
                f"--data-dir={self._etcd_dir}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=devcluster=http://127.0.0.1:{etcd_peer}",
                "--logger=zap",
                "--log-level=warn",
            ],
        )
        self._wait_http(etcd, "127.0.0.1", etcd_client, "/health", tls=False)

        apiserver_flags = [
            f"--etcd-servers=http://127.0.0.1:{etcd_client}",
            f"--secure-port={self.api_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--cert-dir={self.pki_dir}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={self.ca_cert}",
            f"--kubelet-certificate-authority={self.ca_cert}",
            f"--kubelet-client-certificate={kubelet_client.cert}",
            f"--kubelet-client-key={kubelet_client.key}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--token-auth-file={tokens}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={signing.cert}",
            f"--service-account-signing-key-file={signing.key}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--allow-privileged=true",
            "--disable-admission-plugins=ServiceAccount",
            # Webhooks behind a Service are called on the pod's address: there is no kube-proxy.
            "--enable-aggregator-routing=true",
            "--profiling=false",
        ]
        if self.config.audit is not None:
            self.config.audit.log_path.parent.mkdir(parents=True, exist_ok=True)
            apiserver_flags += [
                f"--audit-policy-file={self.config.audit.policy_file}",
                f"--audit-log-path={self.config.audit.log_path}",
                "--audit-log-format=json",
            ]
        apiserver = self._spawn(
            "kube-apiserver", [str(apiserver_bin), *apiserver_flags, *self.config.extra_apiserver_flags]
        )
        self._wait_http(apiserver, "127.0.0.1", self.api_port, "/readyz", tls=True)

        self._spawn(
            "kube-controller-manager",
            [
                str(controller_manager_bin),
                f"--kubeconfig={self.admin_kubeconfig}",
                f"--controllers={CONTROLLERS}",
                "--leader-elect=false",
                "--secure-port=0",
                "--use-service-account-credentials=false",
            ],
        )
        self.startup_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Stop the processes in reverse order of start, by PID; nothing is left running."""
        for process in reversed(self.processes):
            process.stop(grace=5.0)
            identity = process_identity(process.pid)
            if identity is None:
                continue
            self.state.forget("pids", list(identity))
        self.processes.clear()
        if self._etcd_dir is not None:
            shutil.rmtree(self._etcd_dir, ignore_errors=True)
            self.state.forget("trees", str(self._etcd_dir))

    def check_running(self) -> None:
        """Raise if a control-plane process has exited."""
        for process in self.processes:
            code = process.exited()
            if code is not None:
                raise ControlPlaneError(f"{process.name} exited with {code}; log tail:\n{process.log_tail()}")

    # -- identities ----------------------------------------------------------------------------

    def kubeconfig_for(
        self, user: str, groups: tuple[str, ...] | list[str] = (), *, namespace: str = "default"
    ) -> Path:
        """A kubeconfig authenticating as ``user`` in ``groups`` by a CA-signed client certificate.

        RBAC then decides what the user may do, exactly as for a real user.
        """
        if self._ca is None:
            raise ControlPlaneError("the control plane is not started")
        stem = (
            "user-"
            + "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in user)
            + "-"
            + secrets.token_hex(3)
        )
        pair = self._ca.issue(stem, user, organizations=tuple(groups))
        return write_kubeconfig(
            self.kubeconfig_dir / f"{stem}.kubeconfig",
            server=self.server,
            ca_cert=self.ca_cert,
            user=user,
            client=pair,
            namespace=namespace,
        )

    def issue_node_serving(self, node: str, address: str) -> CertificatePair:
        """A serving certificate for node ``node`` at ``address``, as the kubelet's would be."""
        if self._ca is None:
            raise ControlPlaneError("the control plane is not started")
        return self._ca.issue(
            f"node-{node}", f"system:node:{node}", dns_names=(node,), ip_addresses=(address,), server=True
        )

    def kubeconfig_for_service_account(self, namespace: str, name: str) -> Path:
        """A kubeconfig that authenticates as ServiceAccount ``namespace/name``.

        The certificate carries the user name and groups a ServiceAccount token would give
        (``system:serviceaccount:<ns>:<name>``; ``system:serviceaccounts`` and
        ``system:serviceaccounts:<ns>``), so RoleBindings to the ServiceAccount apply to it.
        """
        return self.kubeconfig_for(
            f"system:serviceaccount:{namespace}:{name}",
            ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
            namespace=namespace,
        )

    # -- internals -----------------------------------------------------------------------------

    def _etcd_data_dir(self) -> Path:
        # etcd fsyncs every write; on tmpfs those cost nothing, which matters for scale benchmarks.
        shm = Path("/dev/shm")
        if shm.is_dir():
            path = shm / f"kubesft-devcluster-{self.state.run_id}-etcd"
            self.state.remember("trees", str(path))
            return path
        return self.directory / "etcd"

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        process = ManagedProcess(name, argv, self.directory / "logs" / f"{name}.log")
        process.start()
        self.processes.append(process)
        identity = process_identity(process.pid)
        if identity is not None:
            self.state.remember("pids", list(identity))
        return process

    def _wait_http(self, process: ManagedProcess, host: str, port: int, path: str, *, tls: bool) -> None:
        deadline = time.monotonic() + self.config.start_timeout
        context: ssl.SSLContext | None = None
        if tls:
            context = ssl.create_default_context(cafile=str(self.ca_cert))
            context.load_cert_chain(str(self.pki_dir / "admin.crt"), str(self.pki_dir / "admin.key"))
        last_error = ""
        while time.monotonic() < deadline:
            code = process.exited()
            if code is not None:
                raise ControlPlaneError(f"{process.name} exited with {code}; log tail:\n{process.log_tail()}")
            connection: http.client.HTTPConnection = (
                http.client.HTTPSConnection(host, port, timeout=2, context=context)
                if tls
                else http.client.HTTPConnection(host, port, timeout=2)
            )
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                body = response.read().decode(errors="replace")
                if response.status == 200:
                    return
                last_error = f"HTTP {response.status}: {body[:300]}"
            except OSError as err:
                last_error = str(err)
            finally:
                connection.close()
            time.sleep(0.1)
        raise ControlPlaneError(
            f"{process.name} not ready on {host}:{port}{path} after {self.config.start_timeout:.0f}s "
            f"({last_error}); log tail:\n{process.log_tail()}"
        )
