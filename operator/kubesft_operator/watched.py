"""What the operator keeps in memory of each watched object: only the fields it reads.

Watch events bring whole objects, managed fields and pod specs included. The indexes hold
thousands of them in a busy cluster, so each is cut down to what ``attempts`` and ``lifecycle``
read (the types in ``objects``) before it is stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from kubesft_api.sftjob import GROUP, KIND, VERSION
from kubesft_operator import names
from kubesft_operator.objects import (
    ContainerStatus,
    Job,
    JobSpec,
    JobStatus,
    ObjectMeta,
    Pod,
    PodStatus,
    SFTJob,
)

Key = tuple[str, str]
"""(namespace, SFTJob name): the SFTJob itself, and its Jobs and Pods by their job label."""

_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_META_FIELDS = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "labels",
    "finalizers",
)


def _picked(source: Mapping[str, Any] | None, fields: Iterable[str]) -> dict[str, Any]:
    return {key: source[key] for key in fields if source and key in source}


def _meta(obj: Mapping[str, Any], *, annotations: bool = True) -> ObjectMeta:
    meta = obj.get("metadata") or {}
    out = _picked(meta, _META_FIELDS)
    owners = [
        {"kind": ref.get("kind"), "uid": ref.get("uid"), "controller": True}
        for ref in meta.get("ownerReferences") or []
        if ref.get("controller")
    ]
    if owners:
        out["ownerReferences"] = owners
    if annotations and meta.get("annotations"):
        out["annotations"] = {k: v for k, v in meta["annotations"].items() if k != _LAST_APPLIED}
    return cast(ObjectMeta, out)


def keep_sftjob(obj: Mapping[str, Any]) -> SFTJob:
    return {
        "apiVersion": str(obj.get("apiVersion") or f"{GROUP}/{VERSION}"),
        "kind": str(obj.get("kind") or KIND),
        "metadata": _meta(obj),
        "spec": obj.get("spec") or {},
        "status": obj.get("status") or {},
    }


def keep_job(obj: Mapping[str, Any]) -> Job:
    return {
        "metadata": _meta(obj),
        "spec": cast(JobSpec, _picked(obj.get("spec"), ("suspend", "activeDeadlineSeconds", "completions"))),
        "status": cast(JobStatus, _picked(obj.get("status"), ("conditions", "startTime", "completionTime"))),
    }


def keep_pod(obj: Mapping[str, Any]) -> Pod:
    meta = _meta(obj, annotations=False)
    index = ((obj.get("metadata") or {}).get("annotations") or {}).get(names.ANNOTATION_COMPLETION_INDEX)
    if index is not None:
        meta["annotations"] = {names.ANNOTATION_COMPLETION_INDEX: index}
    status = obj.get("status") or {}
    kept = _picked(status, ("phase", "podIP", "startTime", "reason", "message", "conditions"))
    kept["containerStatuses"] = [
        cast(ContainerStatus, _picked(c, ("name", "image", "state")))
        for c in status.get("containerStatuses") or []
        if c.get("name") == names.CONTAINER_NAME
    ]
    return {"metadata": meta, "status": cast(PodStatus, kept)}


@dataclass(frozen=True)
class Observed:
    """What the watches show for one SFTJob."""

    sftjob: SFTJob | None
    jobs: list[Job]
    pods: list[Pod]


@dataclass(frozen=True)
class Watches:
    """The watches as Kopf's in-memory indexes hold them: SFTJobs, and their Jobs and Pods."""

    sftjobs: Mapping[Key, Iterable[SFTJob]]
    jobs: Mapping[Key, Iterable[Job]]
    pods: Mapping[Key, Iterable[Pod]]

    def keys(self) -> list[Key]:
        """Every SFTJob the watch shows now."""
        return list(self.sftjobs)

    def observed(self, key: Key) -> Observed:
        """What the watches show for ``key`` now: the SFTJob (or None), its Jobs and their Pods."""
        found = list(self.sftjobs.get(key, ()))
        return Observed(
            found[0] if found else None, list(self.jobs.get(key, ())), list(self.pods.get(key, ()))
        )
