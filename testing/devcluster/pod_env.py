"""A container's environment and command line, resolved the way the kubelet resolves them."""

from __future__ import annotations

import base64
import fnmatch
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.utils import parse_quantity

# (kind, namespace, name) -> the object as a dict, or None when it does not exist.
ObjectReader = Callable[[str, str, str], dict[str, Any] | None]

_VARIABLE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_MAP_FIELD = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class ContainerConfigError(Exception):
    """The container cannot be configured yet (a missing Secret key, ConfigMap, ...).

    The kubelet keeps such a pod Pending with reason CreateContainerConfigError and retries.
    """


@dataclass(frozen=True)
class ImageEntrypoint:
    """What an image runs when the container sets no command: a stand-in for its ENTRYPOINT/CMD."""

    image_pattern: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] = ()

    def matches(self, image: str) -> bool:
        return fnmatch.fnmatchcase(image, self.image_pattern)


DEFAULT_ENTRYPOINTS = (
    ImageEntrypoint("*kubesft-trainer*", ("python", "-m", "kubesft_trainer")),
    ImageEntrypoint("*kubesft-operator*", ("python", "-m", "kubesft_operator")),
)


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: known variables are replaced, ``$$`` is a literal ``$``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VARIABLE.sub(replace, value)


def field_value(pod: Mapping[str, Any], path: str) -> str:
    """The value of a downward-API ``fieldRef.fieldPath``."""
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": metadata.get("name"),
        "metadata.namespace": metadata.get("namespace"),
        "metadata.uid": metadata.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
        "status.podIPs": ",".join(ip["ip"] for ip in status.get("podIPs") or []),
    }
    if path in simple:
        return str(simple[path] or "")
    match = _MAP_FIELD.match(path)
    if match:
        return str((metadata.get(match.group(1)) or {}).get(match.group(2), ""))
    raise ContainerConfigError(f'unsupported fieldRef fieldPath "{path}"')


def resource_value(
    container: Mapping[str, Any], ref: Mapping[str, Any], allocatable: Mapping[str, str]
) -> str:
    """The value of a ``resourceFieldRef``: a limit falls back to the node's allocatable amount."""
    kind, _, resource = ref["resource"].partition(".")
    amounts = (container.get("resources") or {}).get(kind) or {}
    amount = amounts.get(resource) or allocatable.get(resource)
    if amount is None:
        return "0"
    divisor = parse_quantity(ref.get("divisor", "1"))
    return str(math.ceil(parse_quantity(amount) / divisor))


def _key_ref(reader: ObjectReader, kind: str, namespace: str, ref: Mapping[str, Any]) -> str | None:
    name, key, optional = ref["name"], ref["key"], bool(ref.get("optional"))
    obj = reader(kind, namespace, name)
    noun = kind.lower()
    if obj is None:
        if optional:
            return None
        raise ContainerConfigError(f'{noun} "{name}" not found')
    value = _data(obj, kind).get(key)
    if value is None:
        if optional:
            return None
        raise ContainerConfigError(f"couldn't find key {key} in {kind} {namespace}/{name}")
    return value


def _data(obj: Mapping[str, Any], kind: str) -> dict[str, str]:
    """A Secret's or ConfigMap's keys as text."""
    if kind == "Secret":
        return {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
    data = dict(obj.get("data") or {})
    data.update(
        {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("binaryData") or {}).items()}
    )
    return data


def container_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    reader: ObjectReader,
    base_env: Mapping[str, str],
    allocatable: Mapping[str, str],
) -> dict[str, str]:
    """``base_env`` (the image's environment), then envFrom, then env, each expanded in order."""
    namespace = pod["metadata"]["namespace"]
    env = dict(base_env)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(field)
            if ref is None:
                continue
            obj = reader(kind, namespace, ref["name"])
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(f'{kind.lower()} "{ref["name"]}" not found')
            env.update({prefix + key: value for key, value in _data(obj, kind).items()})
    for item in container.get("env") or []:
        name = item["name"]
        source = item.get("valueFrom")
        if source is None:
            env[name] = expand(item.get("value", ""), env)
            continue
        if "fieldRef" in source:
            env[name] = field_value(pod, source["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in source:
            env[name] = resource_value(container, source["resourceFieldRef"], allocatable)
        else:
            kind, ref = (
                ("Secret", source["secretKeyRef"])
                if "secretKeyRef" in source
                else ("ConfigMap", source["configMapKeyRef"])
            )
            value = _key_ref(reader, kind, namespace, ref)
            if value is not None:
                env[name] = value
    return env


def container_argv(
    container: Mapping[str, Any], env: Mapping[str, str], entrypoints: tuple[ImageEntrypoint, ...]
) -> list[str]:
    """command + args with the image's entrypoint and cmd filling in what the container leaves out."""
    command = container.get("command")
    args = container.get("args")
    if command is None:
        image = container.get("image", "")
        known = next((e for e in entrypoints if e.matches(image)), None)
        if known is None:
            raise ContainerConfigError(
                f'image "{image}" has no entrypoint known to the process node; set the container command'
            )
        command = list(known.entrypoint)
        if args is None:
            args = list(known.cmd)
    return [expand(part, env) for part in [*command, *(args or [])]]
