"""What the process node asks of the API server, as a kubelet (and the scheduler's binding step)
would: its Node and the Node's status, bindings, the objects pods refer to, pod status, and the
final removal of deleted pods. Documents go over the wire as raw JSON, without client models."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from kubesft_api.times import now_text
from testing.devcluster.binaries import kubernetes_version

_RAW = {"_preload_content": False}
_MERGE_PATCH = "application/merge-patch+json"


@contextlib.contextmanager
def _unless_gone_or_replaced() -> Iterator[None]:
    """The object was deleted (404) or is another one by now (409): nothing left to do."""
    try:
        yield
    except ApiException as err:
        if err.status not in (404, 409):
            raise


def node_allocatable() -> dict[str, str]:
    """The whole machine: pods share it, as they would share a node."""
    cpus = str(os.cpu_count() or 1)
    memory = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 1024}Ki"
    return {"cpu": cpus, "memory": memory, "pods": "1000", "ephemeral-storage": "100Gi"}


class NodeApi:
    def __init__(self, core: client.CoreV1Api, node_name: str) -> None:
        self.core = core
        self.node_name = node_name

    def register(self, *, unschedulable: bool = False) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {"kubernetes.io/hostname": self.node_name, "kubernetes.io/os": "linux"},
            },
            "spec": {"unschedulable": unschedulable},
        }
        self.core.create_node(node, **_RAW)

    def write_node_status(
        self,
        allocatable: dict[str, str],
        host_ip: str,
        kubelet_port: int | None,
        ready: bool,
        reason: str,
        message: str,
    ) -> None:
        """``kubelet_port``: where the apiserver reads logs (pods/log); None when not served."""
        stamp = now_text()
        status: dict[str, Any] = {
            "capacity": allocatable,
            "allocatable": allocatable,
            "addresses": [
                {"type": "InternalIP", "address": host_ip},
                {"type": "Hostname", "address": self.node_name},
            ],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "Unknown",
                    "reason": reason,
                    "message": message,
                    "lastHeartbeatTime": stamp,
                    "lastTransitionTime": stamp,
                }
            ],
            "nodeInfo": {
                "kubeletVersion": f"v{kubernetes_version()}-devcluster",
                "containerRuntimeVersion": "process://devcluster",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "osImage": "",
                "kernelVersion": os.uname().release,
                "kubeProxyVersion": "",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }
        if kubelet_port is not None:
            status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": kubelet_port}}
        self.core.patch_node_status(self.node_name, {"status": status}, _content_type=_MERGE_PATCH, **_RAW)

    def list_pods(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(self.core.list_pod_for_all_namespaces(**_RAW).data)["items"]
        return items

    def bind(self, meta: dict[str, Any]) -> None:
        """Bind the pod of ``meta`` to this node; one already bound or gone is left as it is."""
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "uid": meta["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }
        with _unless_gone_or_replaced():
            self.core.create_namespaced_binding(meta["namespace"], binding, **_RAW)

    def mark_unschedulable(self, meta: dict[str, Any]) -> None:
        """What kube-scheduler writes on a pod no node can take: PodScheduled False, Unschedulable."""
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 node(s) were unschedulable.",
            "lastTransitionTime": now_text(),
        }
        self.write_pod_status(meta["namespace"], meta["name"], meta["uid"], {"conditions": [condition]})

    def read_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A Secret, ConfigMap or PersistentVolumeClaim a pod refers to; None if it does not exist."""
        reader = {
            "Secret": self.core.read_namespaced_secret,
            "ConfigMap": self.core.read_namespaced_config_map,
            "PersistentVolumeClaim": self.core.read_namespaced_persistent_volume_claim,
        }[kind]
        try:
            found: dict[str, Any] = json.loads(reader(name, namespace, **_RAW).data)
            return found
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def write_pod_status(self, namespace: str, name: str, uid: str, status: dict[str, Any]) -> None:
        """Merge ``status`` into the pod of ``uid``; a pod since deleted or replaced is skipped."""
        with _unless_gone_or_replaced():
            self.core.patch_namespaced_pod_status(
                name,
                namespace,
                {"metadata": {"uid": uid}, "status": status},
                _content_type=_MERGE_PATCH,
                **_RAW,
            )

    def delete_now(self, namespace: str, name: str, uid: str) -> None:
        """What the kubelet does once a deleted pod's containers are gone: remove it for good."""
        with _unless_gone_or_replaced():
            self.core.delete_namespaced_pod(
                name, namespace, body={"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}, **_RAW
            )
