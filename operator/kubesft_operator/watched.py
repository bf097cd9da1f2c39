"""What the operator keeps in memory of each watched object: only the fields it reads.

Watch events bring whole objects, managed fields and pod specs included. The indexes hold
thousands of them in a busy cluster, so each is cut down to what ``status`` and ``lifecycle``
read before it is stored.
"""

from __future__ import annotations

from typing import Any

from kubesft_operator import names

_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _meta(obj: dict[str, Any], *, annotations: bool = True) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    out = {
        key: meta[key]
        for key in (
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
        if key in meta
    }
    if annotations and meta.get("annotations"):
        out["annotations"] = {k: v for k, v in meta["annotations"].items() if k != _LAST_APPLIED}
    return out


def keep_sftjob(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": _meta(obj),
        "spec": obj.get("spec") or {},
        "status": obj.get("status") or {},
    }


def keep_job(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    return {
        "metadata": _meta(obj),
        "spec": {k: spec[k] for k in ("suspend", "activeDeadlineSeconds", "completions") if k in spec},
        "status": {k: status[k] for k in ("conditions", "startTime", "completionTime") if k in status},
    }


def keep_pod(obj: dict[str, Any]) -> dict[str, Any]:
    meta = _meta(obj, annotations=False)
    index = ((obj.get("metadata") or {}).get("annotations") or {}).get(names.ANNOTATION_COMPLETION_INDEX)
    if index is not None:
        meta["annotations"] = {names.ANNOTATION_COMPLETION_INDEX: index}
    status = obj.get("status") or {}
    kept = {
        k: status[k]
        for k in ("phase", "podIP", "startTime", "reason", "message", "conditions")
        if k in status
    }
    kept["containerStatuses"] = [
        {k: c[k] for k in ("name", "image", "state") if k in c}
        for c in status.get("containerStatuses") or []
        if c.get("name") == names.CONTAINER_NAME
    ]
    return {"metadata": meta, "status": kept}
