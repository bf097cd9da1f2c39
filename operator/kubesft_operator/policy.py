"""The platform's policy for SFTJobs: which images, PriorityClasses and storage a job may use.

The chart's ``policy.*`` values reach the operator as settings. The webhook refuses a spec that
breaks the policy, and the operator checks it again before it starts each attempt, so a job that
got past admission (the webhook was down or off, or the policy changed since) cannot start either.
Every problem names the spec field and the policy value it breaks.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kubesft_api.sftjob import SFTJobSpec

NAMESPACE_PLACEHOLDER = "{namespace}"
_STORAGE_SECTIONS = ("model", "dataset", "checkpoints", "output")
"""The spec sections whose URIs the trainer reads or writes."""
_WRITTEN = (("checkpoints", "uri"), ("output", "uri"))
"""Where a job writes, and where checkpoint retention deletes."""


def image_repository(image: str) -> str:
    """``registry/name`` of ``registry/name:tag`` or ``registry/name@sha256:…``."""
    image = image.split("@", 1)[0]
    slash, colon = image.rfind("/"), image.rfind(":")
    return image[:colon] if colon > slash else image


def repository_patterns(image: str) -> tuple[str, ...]:
    """Patterns that allow any tag or digest of ``image``'s repository, and nothing else."""
    repository = image_repository(image)
    return (f"{repository}:*", f"{repository}@sha256:*")


@dataclass(frozen=True)
class Policy:
    """What SFTJobs may ask for. The defaults allow everything; the settings make the real one."""

    allowed_images: tuple[str, ...] = ("*",)
    """fnmatch patterns (``*`` matches any characters, ``/`` included) for spec.resources.image."""
    allowed_priority_classes: tuple[str, ...] = ("*",)
    """fnmatch patterns for spec.resources.priorityClassName; empty allows none."""
    storage_prefixes: tuple[str, ...] = ()
    """Templates (``s3://models/{namespace}/``) that written URIs must fall under; empty: any."""
    allow_ambient_credentials: bool = True

    def prefixes_for(self, namespace: str) -> list[str]:
        return [template.replace(NAMESPACE_PLACEHOLDER, namespace) for template in self.storage_prefixes]


def _listed(values: Iterable[str]) -> str:
    shown = ", ".join(values)
    return shown or "none allowed"


def _matches(value: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


def _under(uri: str, prefix: str) -> bool:
    if prefix.endswith("/"):
        return uri.startswith(prefix)
    return uri == prefix or uri.startswith(prefix + "/")


def _has_dot_segments(uri: str) -> bool:
    """``..`` (or ``.``) in a path: some stores resolve it, which would step out of a prefix."""
    path = uri.split("://", 1)[-1]
    return any(segment in (".", "..") for segment in path.split("/"))


def _s3_uris(node: Any, path: str) -> list[tuple[str, str]]:
    """(field path, URI) of every s3:// value under ``node``."""
    if isinstance(node, dict):
        return [found for key, value in node.items() for found in _s3_uris(value, f"{path}.{key}")]
    if isinstance(node, list):
        return [found for number, value in enumerate(node) for found in _s3_uris(value, f"{path}[{number}]")]
    if isinstance(node, str) and node.startswith("s3://"):
        return [(path, node)]
    return []


def s3_uris(spec: SFTJobSpec) -> list[tuple[str, str]]:
    """(field path, URI) of every S3 location the job reads or writes."""
    dumped = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    return [
        found for section in _STORAGE_SECTIONS for found in _s3_uris(dumped.get(section), f"spec.{section}")
    ]


def _image_problems(spec: SFTJobSpec, policy: Policy) -> list[str]:
    image = spec.resources.image
    if image is None or _matches(image, policy.allowed_images):
        return []  # unset: the operator's own trainer image, which the platform chose
    return [
        f"spec.resources.image: '{image}' matches no pattern of policy.allowedImages "
        f"({_listed(policy.allowed_images)})"
    ]


def _priority_problems(spec: SFTJobSpec, policy: Policy) -> list[str]:
    name = spec.resources.priority_class_name
    if name is None or _matches(name, policy.allowed_priority_classes):
        return []
    return [
        f"spec.resources.priorityClassName: '{name}' is not in policy.allowedPriorityClasses "
        f"({_listed(policy.allowed_priority_classes)})"
    ]


def _storage_problems(spec: SFTJobSpec, namespace: str, policy: Policy) -> list[str]:
    if not policy.storage_prefixes:
        return []
    prefixes = policy.prefixes_for(namespace)
    dumped = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    problems = []
    for section, field in _WRITTEN:
        uri = (dumped.get(section) or {}).get(field)
        if uri is None:
            continue
        where = f"spec.{section}.{field}"
        if _has_dot_segments(uri):
            problems.append(
                f"{where}: '{uri}' has a '.' or '..' segment, which policy.storagePrefixes refuses"
            )
        elif not any(_under(uri, prefix) for prefix in prefixes):
            problems.append(
                f"{where}: '{uri}' is outside policy.storagePrefixes, which allows in namespace "
                f"{namespace}: {', '.join(prefixes)}"
            )
    return problems


def _credentials_problems(spec: SFTJobSpec, policy: Policy) -> list[str]:
    if policy.allow_ambient_credentials or spec.checkpoints.credentials_secret is not None:
        return []
    used = s3_uris(spec)
    if not used:
        return []
    field, uri = used[0]
    return [
        f"spec.checkpoints.credentialsSecret: required, because policy.allowAmbientCredentials is false "
        f"and {field} uses S3 ({uri}); name a Secret with this namespace's S3 credentials"
    ]


def policy_problems(spec: SFTJobSpec, namespace: str, policy: Policy) -> list[str]:
    """Why ``spec`` breaks ``policy`` in ``namespace``; empty when it does not."""
    return [
        *_image_problems(spec, policy),
        *_priority_problems(spec, policy),
        *_storage_problems(spec, namespace, policy),
        *_credentials_problems(spec, policy),
    ]
