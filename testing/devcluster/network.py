"""Pod networking: a bridge on the host and one network namespace per pod with its own address.

The bridge gets the first address of a private /16 that no route on this machine uses yet; pods
get the following addresses. Pods have no default route and the host does not forward, so
traffic stays between the host and the pods.
"""

from __future__ import annotations

import fcntl
import ipaddress
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from testing.devcluster.run_state import RunState, runs_root

# Candidate subnets: 10.200.0.0/16 .. 10.249.0.0/16.
_CANDIDATE_SECOND_OCTETS = range(200, 250)


class NetworkError(RuntimeError):
    """An `ip` command failed; the message carries the command and its stderr."""


def ip(*args: str) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


@dataclass(frozen=True)
class PodInterface:
    netns: str
    address: str
    host_link: str

    @property
    def netns_path(self) -> Path:
        return Path("/run/netns") / self.netns


class PodNetwork:
    """The node's bridge and the pod network namespaces attached to it."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.bridge = f"ksb{state.run_id}"
        self._lock = threading.Lock()
        self._next_host = 2
        self._free_hosts: list[int] = []
        self._counter = 0
        self.subnet = self._create_bridge()
        self.gateway = str(self.subnet.network_address + 1)

    def _used_networks(self) -> list[ipaddress.IPv4Network]:
        used = []
        for line in ip("-4", "-o", "addr", "show").splitlines() + ip("-4", "route", "show").splitlines():
            for token in line.split():
                if "/" in token or token[:1].isdigit():
                    try:
                        used.append(ipaddress.ip_network(token, strict=False))
                    except ValueError:
                        continue
        return [net for net in used if isinstance(net, ipaddress.IPv4Network)]

    def _create_bridge(self) -> ipaddress.IPv4Network:
        lock_path = runs_root() / "subnets.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        # Two runs starting at once must not pick the same subnet.
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            used = self._used_networks()
            for octet in _CANDIDATE_SECOND_OCTETS:
                subnet = ipaddress.IPv4Network(f"10.{octet}.0.0/16")
                if any(subnet.overlaps(net) for net in used):
                    continue
                self.state.remember("links", self.bridge)
                ip("link", "add", self.bridge, "type", "bridge")
                ip("addr", "add", f"{subnet.network_address + 1}/16", "dev", self.bridge)
                ip("link", "set", self.bridge, "up")
                return subnet
        raise NetworkError("no free 10.x.0.0/16 subnet between 10.200 and 10.249 for the pod bridge")

    def _allocate(self) -> tuple[str, int]:
        with self._lock:
            # New addresses first: a reused address could still sit in some peer's ARP cache.
            if self._next_host < self.subnet.num_addresses - 1:
                host = self._next_host
                self._next_host += 1
            elif self._free_hosts:
                host = self._free_hosts.pop(0)
            else:
                raise NetworkError(f"pod subnet {self.subnet} is full")
            self._counter += 1
            return str(self.subnet.network_address + host), self._counter

    def attach(self) -> PodInterface:
        """A new network namespace with loopback and eth0 on the bridge."""
        address, number = self._allocate()
        netns = f"ks-{self.state.run_id}-{number}"
        host_link = f"ksv{self.state.run_id}{number:x}"[:15]
        self.state.remember("netns", netns)
        ip("netns", "add", netns)
        ip("link", "add", host_link, "type", "veth", "peer", "name", "eth0", "netns", netns)
        ip("link", "set", host_link, "master", self.bridge, "up")
        ip("-n", netns, "addr", "add", f"{address}/16", "dev", "eth0")
        ip("-n", netns, "link", "set", "eth0", "up")
        ip("-n", netns, "link", "set", "lo", "up")
        return PodInterface(netns=netns, address=address, host_link=host_link)

    def detach(self, interface: PodInterface) -> None:
        """Delete the pod's namespace (its veth goes with it) and free its address."""
        subprocess.run(["ip", "netns", "delete", interface.netns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "delete", interface.host_link], capture_output=True, check=False)
        self.state.forget("netns", interface.netns)
        host = int(ipaddress.IPv4Address(interface.address)) - int(self.subnet.network_address)
        with self._lock:
            self._free_hosts.append(host)

    def close(self) -> None:
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True, check=False)
        self.state.forget("links", self.bridge)
