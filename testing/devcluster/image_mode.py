"""Containers whose image is in the local image store run inside it, as a container runtime runs
them: the image's root filesystem (read-only under readOnlyRootFilesystem) with a writable layer
of their own, the user of runAsUser/runAsGroup, and the image's ENTRYPOINT, CMD, WORKDIR and ENV.

Other containers, and those a harness override gives a host command, run from the host's
filesystem (the project's virtualenv stands in for the image).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from testing.devcluster.image_store import LocalImage, find_image
from testing.devcluster.pod_env import ContainerConfigError, expand


class ImageCache:
    """Local images by name, looked up once per node: a name missing from the store stays missing."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._found: dict[str, LocalImage | None] = {}
        self._lock = threading.Lock()

    def find(self, name: str) -> LocalImage | None:
        if not self.enabled:
            return None
        with self._lock:
            if name not in self._found:
                self._found[name] = find_image(name)
            return self._found[name]


def image_env(image: LocalImage, extra: Mapping[str, str]) -> dict[str, str]:
    """The image's ENV, then what the node adds to every container."""
    env = dict(image.env)
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env.setdefault("HOME", "/")
    env.update(extra)
    return env


def image_argv(container: Mapping[str, Any], env: Mapping[str, str], image: LocalImage) -> list[str]:
    """The kubelet's rule: command replaces ENTRYPOINT (and drops CMD), args replace CMD."""
    command = container.get("command")
    args = container.get("args")
    if command is None:
        command = list(image.entrypoint)
        if args is None:
            args = list(image.cmd)
    argv = [expand(part, env) for part in [*command, *(args or [])]]
    if not argv:
        raise ContainerConfigError(
            f'image "{image.name}" has no ENTRYPOINT or CMD and the container sets no command'
        )
    return argv


def _passwd_entry(rootfs: Path, user: str) -> tuple[int, int] | None:
    """(uid, gid) of ``user`` (a name or a number) in the image's /etc/passwd."""
    try:
        lines = (rootfs / "etc" / "passwd").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(":")
        if len(fields) >= 4 and user in (fields[0], fields[2]):
            return int(fields[2]), int(fields[3])
    return None


def container_user(pod: Mapping[str, Any], container: Mapping[str, Any], image: LocalImage) -> dict[str, Any]:
    """uid, gid and supplementary groups: the securityContext's, else the image's USER."""
    pod_context = (pod.get("spec") or {}).get("securityContext") or {}
    context = {**pod_context, **(container.get("securityContext") or {})}
    name, _, group = image.user.partition(":")
    entry = _passwd_entry(image.rootfs, name) if name else None
    uid = context.get("runAsUser")
    if uid is None:
        uid = entry[0] if entry else (int(name) if name.isdigit() else 0)
    gid = context.get("runAsGroup")
    if gid is None:
        if group.isdigit():
            gid = int(group)
        else:
            own = _passwd_entry(image.rootfs, str(uid))
            gid = own[1] if own else 0
    groups = [gid, *pod_context.get("supplementalGroups", [])]
    if pod_context.get("fsGroup") is not None:
        groups.append(pod_context["fsGroup"])
    if context.get("runAsNonRoot") and uid == 0:
        raise ContainerConfigError("container has runAsNonRoot and image will run as root")
    return {
        "uid": int(uid),
        "gid": int(gid),
        "groups": sorted(set(groups)),
        "noNewPrivs": context.get("allowPrivilegeEscalation") is False,
    }


def rootfs_plan(container_dir: Path, container: Mapping[str, Any], image: LocalImage) -> dict[str, Any]:
    """The container's root: the image's files below a fresh writable layer, as on every start."""
    layer = container_dir / "rootfs-layer"
    shutil.rmtree(layer, ignore_errors=True)
    (layer / "upper").mkdir(parents=True)
    (layer / "work").mkdir()
    (container_dir / "rootfs").mkdir(exist_ok=True)
    read_only = bool((container.get("securityContext") or {}).get("readOnlyRootFilesystem"))
    return {
        "lower": str(image.rootfs),
        "upper": str(layer / "upper"),
        "work": str(layer / "work"),
        "root": str(container_dir / "rootfs"),
        "readOnly": read_only,
        "workingDir": container.get("workingDir") or image.working_dir,
    }


def image_plan(
    pod: Mapping[str, Any], container: Mapping[str, Any], container_dir: Path, image: LocalImage | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The sandbox plan's image fields, and the mounts a runtime adds inside an image (resolv.conf);
    nothing for a container that runs from the host."""
    if image is None:
        return {}, []
    fields = {
        "image": rootfs_plan(container_dir, container, image),
        "user": container_user(pod, container, image),
    }
    resolv = Path("/etc/resolv.conf")
    mounts = [{"source": str(resolv), "target": str(resolv), "readOnly": True}] if resolv.exists() else []
    return fields, mounts
