"""Kueue in the local cluster: its controller manager built from its Go module, installed from its
own Helm chart.

The chart's objects are applied as ``helm install`` would apply them (CRDs, RBAC, the webhook
configurations, its Services and Secret), with what a cluster without pods for controllers needs
instead of the Deployment:
- the controller manager runs on the host, authenticated as the chart's ServiceAccount (a client
  certificate), so the chart's RBAC is what it may do;
- its webhook Service has no selector; an EndpointSlice points at that process on the node
  bridge's address, where the API server reaches it as it would reach the pod;
- Kueue's own certificate management makes the webhook certificate and injects its CA into the
  webhook configurations, as in a real install; the Secret it writes is copied into the process's
  certificate directory, as the kubelet would mount it into the pod;
- the visibility API server (an aggregated API) is off, and only the batch/job integration is on.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException

from testing.devcluster.binaries import BUILD_MODULES, MissingBinaryError, cache_root, module_version
from testing.devcluster.control_plane import ControlPlane
from testing.devcluster.helm import run_helm
from testing.devcluster.kube import Kube, load_manifests, wait_until
from testing.devcluster.processes import ManagedProcess, free_port
from testing.devcluster.run_state import RunState

NAMESPACE = "kueue-system"
SERVICE_ACCOUNT = "kueue-controller-manager"
WEBHOOK_SERVICE = "kueue-webhook-service"
WEBHOOK_SECRET = "kueue-webhook-server-cert"
CONFIG_MAP = "kueue-manager-config"
# Objects a cluster without controller pods leaves out: the Deployment (the process stands in
# for it) and the visibility server's aggregated APIs (turned off).
LEFT_OUT_KINDS = frozenset({"Deployment", "PodDisruptionBudget", "APIService"})


class KueueError(RuntimeError):
    """Kueue could not be installed or did not become ready."""


def kueue_version() -> str:
    return module_version(BUILD_MODULES / "kueue" / "go.mod", "sigs.k8s.io/kueue")


def kueue_home() -> Path:
    """Where hack/build-control-plane.sh puts the binary (``bin/kueue``) and chart (``chart/``)."""
    home = cache_root() / f"kueue-{kueue_version()}"
    if not (home / "bin" / "kueue").is_file() or not (home / "chart" / "Chart.yaml").is_file():
        raise MissingBinaryError(
            f"Kueue {kueue_version()} is not in {home}: run `bash hack/install-control-plane.sh` "
            "(or `make control-plane`) first"
        )
    return home


def render_chart(chart: Path) -> list[dict[str, Any]]:
    """The chart's objects as ``helm install kueue --namespace kueue-system`` creates them."""
    rendered = run_helm("template", "kueue", str(chart), "--namespace", NAMESPACE).stdout
    return load_manifests(rendered)


def manager_config(
    rendered: list[dict[str, Any]], *, host_ip: str, ports: dict[str, int], cert_dir: Path
) -> str:
    """The chart's controller-manager configuration, with this host's addresses and ports."""
    (config_map,) = [o for o in rendered if o["kind"] == "ConfigMap" and o["metadata"]["name"] == CONFIG_MAP]
    config: dict[str, Any] = yaml.safe_load(config_map["data"]["controller_manager_config.yaml"])
    config["namespace"] = NAMESPACE
    config["health"] = {"healthProbeBindAddress": f"127.0.0.1:{ports['health']}"}
    config["metrics"] = {**config.get("metrics", {}), "bindAddress": f"127.0.0.1:{ports['metrics']}"}
    config["webhook"] = {"host": host_ip, "port": ports["webhook"], "certDir": str(cert_dir)}
    config["leaderElection"] = {"leaderElect": False}
    config["internalCertManagement"] = {"enable": True}
    config["integrations"] = {"frameworks": ["batch/job"]}
    return yaml.safe_dump(config, sort_keys=False)


def installed_objects(
    rendered: list[dict[str, Any]], *, host_ip: str, webhook_port: int
) -> list[dict[str, Any]]:
    """What is applied to the cluster: the chart's objects, the webhook Service without a selector,
    and the EndpointSlice that stands in for the controller pod behind it."""
    kept: list[dict[str, Any]] = []
    for obj in rendered:
        if obj["kind"] in LEFT_OUT_KINDS:
            continue
        if obj["kind"] == "Service" and obj["metadata"]["name"] == WEBHOOK_SERVICE:
            obj = {**obj, "spec": {k: v for k, v in obj["spec"].items() if k != "selector"}}
        kept.append(obj)
    (service,) = [o for o in kept if o["kind"] == "Service" and o["metadata"]["name"] == WEBHOOK_SERVICE]
    (port,) = service["spec"]["ports"]
    kept.append(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{WEBHOOK_SERVICE}-host",
                "namespace": NAMESPACE,
                "labels": {
                    "kubernetes.io/service-name": WEBHOOK_SERVICE,
                    "endpointslice.kubernetes.io/managed-by": "devcluster.kubesft.io",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [host_ip], "conditions": {"ready": True}}],
            "ports": [{"name": port.get("name", ""), "port": webhook_port, "protocol": "TCP"}],
        }
    )
    # The webhook Service's targetPort is the chart's; the EndpointSlice gives the real one.
    return kept


class Kueue:
    """One running Kueue controller manager. ``start()`` installs and starts it; ``stop()`` stops
    the process (the cluster's own teardown removes the objects)."""

    def __init__(self, state: RunState, control_plane: ControlPlane, host_ip: str) -> None:
        self.state = state
        self.control_plane = control_plane
        self.host_ip = host_ip
        self.kube = Kube(control_plane.admin_kubeconfig)
        self.directory = state.directory / "kueue"
        self.process: ManagedProcess | None = None

    @property
    def version(self) -> str:
        return kueue_version()

    def start(self, timeout: float = 120.0) -> None:
        home = kueue_home()
        rendered = render_chart(home / "chart")
        ports = {name: free_port() for name in ("health", "metrics", "webhook")}
        self.directory.mkdir(parents=True, exist_ok=True)
        config_file = self.directory / "config.yaml"
        config_file.write_text(
            manager_config(rendered, host_ip=self.host_ip, ports=ports, cert_dir=self.directory / "certs")
        )
        objects = installed_objects(rendered, host_ip=self.host_ip, webhook_port=ports["webhook"])
        self.kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        self.kube.apply_crds_first(objects)

        kubeconfig = self.control_plane.kubeconfig_for_service_account(NAMESPACE, SERVICE_ACCOUNT)
        self.process = ManagedProcess(
            "kueue",
            [
                str(home / "bin" / "kueue"),
                f"--config={config_file}",
                "--feature-gates=VisibilityOnDemand=false",
                "--zap-log-level=info",
            ],
            self.state.directory / "logs" / "kueue.log",
            env={"KUBECONFIG": str(kubeconfig), "HOME": str(self.directory), "PATH": "/usr/bin:/bin"},
        )
        self.process.start()
        self.state.remember_process(self.process.pid)
        self._mount_certificate(self.directory / "certs", timeout)
        self._wait_webhooks(timeout)

    def _mount_certificate(self, cert_dir: Path, timeout: float) -> None:
        """Copy the webhook certificate Secret into ``cert_dir`` once Kueue has filled it: what the
        kubelet does for the Deployment's secret volume."""

        def filled() -> dict[str, str] | None:
            if self.process is not None and self.process.exited() is not None:
                raise KueueError(
                    f"kueue exited with {self.process.exited()}; log tail:\n{self.process.log_tail()}"
                )
            secret = self.kube.core.read_namespaced_secret(WEBHOOK_SECRET, NAMESPACE)
            data: dict[str, str] = secret.data or {}
            return data if {"tls.crt", "tls.key"} <= set(data) else None

        data = wait_until(
            filled,
            timeout=timeout,
            interval=0.5,
            describe=lambda: f"Kueue never filled Secret {WEBHOOK_SECRET}",
        )
        cert_dir.mkdir(parents=True, exist_ok=True)
        for name, value in data.items():
            partial = cert_dir / f".{name}.partial"
            partial.write_bytes(base64.b64decode(value))
            partial.chmod(0o600)
            partial.replace(cert_dir / name)

    def _wait_webhooks(self, timeout: float) -> None:
        """Ready once the API server reaches Kueue's webhooks: a dry-run ResourceFlavor passes them."""
        probe: dict[str, Any] = {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ResourceFlavor",
            "metadata": {"name": "devcluster-readiness-probe"},
        }
        last = ""

        def admitted() -> bool | None:
            nonlocal last
            if self.process is not None and self.process.exited() is not None:
                raise KueueError(
                    f"kueue exited with {self.process.exited()}; log tail:\n{self.process.log_tail()}"
                )
            try:
                resource = self.kube.resource(probe["apiVersion"], probe["kind"])
                self.kube.dynamic.create(resource, body=probe, query_params=[("dryRun", "All")])
            except ApiException as err:
                last = f"HTTP {err.status}: {str(err.body)[:300]}"
                return None
            return True

        began = time.monotonic()
        wait_until(
            admitted,
            timeout=timeout,
            interval=0.5,
            describe=lambda: (
                f"Kueue's webhooks not reachable after {time.monotonic() - began:.0f}s ({last}); "
                f"log tail:\n{self.process.log_tail() if self.process else ''}"
            ),
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
