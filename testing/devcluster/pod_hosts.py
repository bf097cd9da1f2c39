"""Per-pod /etc/hosts: the stand-in for cluster DNS of pods under a headless Service."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class PodAddress:
    namespace: str
    name: str
    hostname: str
    subdomain: str | None
    labels: Mapping[str, str]
    address: str


def pod_hostname(pod: Mapping[str, Any]) -> str:
    return str((pod.get("spec") or {}).get("hostname") or pod["metadata"]["name"])[:63]


def headless_services(services: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, str]]:
    """(namespace, name) -> selector of every Service with ``clusterIP: None``."""
    return {
        (svc["metadata"]["namespace"], svc["metadata"]["name"]): (svc.get("spec") or {}).get("selector") or {}
        for svc in services
        if (svc.get("spec") or {}).get("clusterIP") == "None"
    }


def _dns_names(pod: PodAddress, reader_namespace: str) -> list[str]:
    if pod.subdomain is None:
        return []
    base = f"{pod.hostname}.{pod.subdomain}.{pod.namespace}"
    names = [f"{base}.svc.{CLUSTER_DOMAIN}", f"{base}.svc", base]
    if pod.namespace == reader_namespace:
        # What the pod's DNS search path (<ns>.svc.cluster.local) would resolve.
        names.append(f"{pod.hostname}.{pod.subdomain}")
    return names


def published(
    pods: Iterable[PodAddress], services: Mapping[tuple[str, str], Mapping[str, str]]
) -> list[PodAddress]:
    """The pods that have DNS names: a headless Service named like their subdomain selects them."""

    def selected(pod: PodAddress) -> bool:
        if pod.subdomain is None:
            return False
        selector = services.get((pod.namespace, pod.subdomain))
        return selector is not None and all(pod.labels.get(k) == v for k, v in selector.items())

    return sorted((pod for pod in pods if selected(pod)), key=lambda p: (p.namespace, p.name))


def render_hosts(own: PodAddress, peers: Iterable[PodAddress]) -> str:
    """The hosts file of ``own``: itself, then every published peer (see ``published``)."""
    own_names = [*_dns_names(own, own.namespace), own.hostname] if own.subdomain else [own.hostname]
    lines = [
        "# Kubernetes-managed hosts file (devcluster process node).",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"{own.address}\t{' '.join(own_names)}",
    ]
    for pod in peers:
        if (pod.namespace, pod.name) != (own.namespace, own.name):
            lines.append(f"{pod.address}\t{' '.join(_dns_names(pod, own.namespace))}")
    return "\n".join(lines) + "\n"


class HostsFileOwner(Protocol):
    """A pod whose /etc/hosts the node keeps (a PodRuntime)."""

    hosts_text: str

    @property
    def address(self) -> str | None: ...
    @property
    def cleaned(self) -> bool: ...
    @property
    def hosts_file(self) -> Path: ...
    def own_address(self) -> PodAddress: ...


def refresh_hosts_files(pods: Iterable[HostsFileOwner], services: Iterable[Mapping[str, Any]]) -> None:
    """Rewrite the hosts file of each running pod whose peers changed."""
    running = [pod for pod in pods if pod.address is not None and not pod.cleaned]
    addresses = [pod.own_address() for pod in running]
    peers = published(addresses, headless_services(services))
    for pod, own in zip(running, addresses, strict=True):
        text = render_hosts(own, peers)
        if text != pod.hosts_text:
            # Written in place: the file is bind-mounted, a rename would not be seen in the pod.
            with open(pod.hosts_file, "r+" if pod.hosts_file.exists() else "w") as handle:
                handle.write(text)
                handle.truncate()
            pod.hosts_text = text
