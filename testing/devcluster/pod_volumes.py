"""A pod's volumes as host directories, and each container's mounts of them."""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from testing.devcluster.pod_env import ContainerConfigError, ObjectReader


def _write_items(
    directory: Path, data: Mapping[str, bytes], items: list[dict[str, Any]] | None, default_mode: int
) -> None:
    selected = (
        [(item["key"], item["path"], item.get("mode")) for item in items]
        if items
        else [(k, k, None) for k in data]
    )
    for key, relative, mode in selected:
        if key not in data:
            raise ContainerConfigError(f"configured key {key} is not in the volume's source")
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[key])
        path.chmod(mode if mode is not None else default_mode)


def _source_data(obj: Mapping[str, Any], kind: str) -> dict[str, bytes]:
    if kind == "Secret":
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


def materialize_volumes(
    pod: Mapping[str, Any], reader: ObjectReader, pod_dir: Path, claim_dir: Any
) -> dict[str, Path]:
    """Create every volume of ``pod`` under ``pod_dir``; returns volume name -> host path.

    ``claim_dir(namespace, claim)`` gives the host directory standing in for a PVC.
    Raises ContainerConfigError while a referenced object is missing.
    """
    namespace = pod["metadata"]["namespace"]
    paths: dict[str, Path] = {}
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = volume["name"]
        target = pod_dir / "volumes" / name
        if "emptyDir" in volume:
            target.mkdir(parents=True, exist_ok=True)
            # The kubelet makes emptyDir world-writable so any container user can use it.
            target.chmod(0o777)
        elif "configMap" in volume or "secret" in volume:
            kind, source = (
                ("ConfigMap", volume["configMap"]) if "configMap" in volume else ("Secret", volume["secret"])
            )
            object_name = source.get("name") if kind == "ConfigMap" else source.get("secretName")
            obj = reader(kind, namespace, object_name)
            if obj is None and not source.get("optional"):
                raise ContainerConfigError(f'{kind.lower()} "{object_name}" not found')
            target.mkdir(parents=True, exist_ok=True)
            if obj is not None:
                _write_items(
                    target, _source_data(obj, kind), source.get("items"), source.get("defaultMode", 0o644)
                )
        elif "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            if reader("PersistentVolumeClaim", namespace, claim) is None:
                raise ContainerConfigError(f'persistentvolumeclaim "{claim}" not found')
            target = claim_dir(namespace, claim)
        elif "hostPath" in volume:
            host_path = Path(volume["hostPath"]["path"])
            kind = volume["hostPath"].get("type", "")
            if kind == "DirectoryOrCreate":
                host_path.mkdir(parents=True, exist_ok=True)
            elif kind == "FileOrCreate" and not host_path.exists():
                host_path.parent.mkdir(parents=True, exist_ok=True)
                host_path.touch()
            elif not host_path.exists():
                raise ContainerConfigError(f"hostPath {host_path} does not exist")
            target = host_path
        else:
            kinds = sorted(set(volume) - {"name"})
            raise ContainerConfigError(
                f"volume {name}: type {', '.join(kinds)} is not supported by the process node"
            )
        paths[name] = target
    return paths


def container_mounts(container: Mapping[str, Any], volumes: Mapping[str, Path]) -> list[dict[str, Any]]:
    """Bind mounts for the sandbox: host source, mountPath target, read-only flag."""
    mounts = []
    for mount in container.get("volumeMounts") or []:
        volume = mount["name"]
        if volume not in volumes:
            raise ContainerConfigError(f'volumeMount "{volume}" names no volume of the pod')
        source = volumes[volume]
        sub_path = mount.get("subPath")
        if sub_path:
            if os.path.isabs(sub_path) or ".." in Path(sub_path).parts:
                raise ContainerConfigError(f"subPath {sub_path!r} must be a relative path inside the volume")
            source = source / sub_path
            if not source.exists():
                source.mkdir(parents=True)
        mounts.append(
            {"source": str(source), "target": mount["mountPath"], "readOnly": bool(mount.get("readOnly"))}
        )
    return mounts
