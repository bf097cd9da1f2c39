"""Pod targets in the shape Prometheus' Kubernetes service discovery (role: pod) gives them.

Debian's ``prometheus`` is built without Kubernetes discovery, so this lists pods from the API
server and writes them to a file_sd file with the same ``__meta_kubernetes_*`` labels; scrape
configs generated from a PodMonitor then relabel them exactly as in a cluster.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import tempfile
import threading
from typing import Any

from kubernetes import client


def _label_name(key: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", key)


def pod_targets(pods: list[client.V1Pod]) -> list[dict[str, Any]]:
    """One target per declared container port of every pod that has an IP."""
    targets = []
    for pod in pods:
        if not pod.status or not pod.status.pod_ip:
            continue
        meta = pod.metadata
        pod_labels: dict[str, str] = {
            "__meta_kubernetes_namespace": meta.namespace,
            "__meta_kubernetes_pod_name": meta.name,
            "__meta_kubernetes_pod_ip": pod.status.pod_ip,
            "__meta_kubernetes_pod_phase": pod.status.phase or "",
            "__meta_kubernetes_pod_node_name": pod.spec.node_name or "",
            "__meta_kubernetes_pod_uid": meta.uid,
        }
        for key, value in (meta.labels or {}).items():
            pod_labels[f"__meta_kubernetes_pod_label_{_label_name(key)}"] = value
            pod_labels[f"__meta_kubernetes_pod_labelpresent_{_label_name(key)}"] = "true"
        for container in pod.spec.containers:
            for port in container.ports or []:
                targets.append(
                    {
                        "targets": [f"{pod.status.pod_ip}:{port.container_port}"],
                        "labels": {
                            **pod_labels,
                            "__meta_kubernetes_pod_container_name": container.name,
                            "__meta_kubernetes_pod_container_port_name": port.name or "",
                            "__meta_kubernetes_pod_container_port_number": str(port.container_port),
                            "__meta_kubernetes_pod_container_port_protocol": port.protocol or "TCP",
                        },
                    }
                )
    return targets


def write_targets(path: pathlib.Path, targets: list[dict[str, Any]]) -> None:
    """Replace ``path`` atomically, so Prometheus never reads half a file."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        json.dump(targets, tmp)
    os.replace(tmp.name, path)


class PodDiscovery:
    """Keeps ``path`` up to date with every pod of the cluster, every ``interval`` seconds."""

    def __init__(self, api: client.ApiClient, path: pathlib.Path, interval: float = 1.0) -> None:
        self.core = client.CoreV1Api(api)
        self.path = path
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pod-discovery", daemon=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.refresh()

    def refresh(self) -> None:
        write_targets(self.path, pod_targets(self.core.list_pod_for_all_namespaces().items))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()

    def start(self) -> PodDiscovery:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
