"""The few Kubernetes API calls the operator makes: JSON over Kopf's own HTTP stack (aiohttp).

The official ``kubernetes`` client is not used. Importing it costs the operator about 60 MiB of
memory, more than it holds for 200 SFTJobs (``bench/operator_scale``), and Kopf, which imports it
whenever it is installed, then logs in through it too. Credentials come from Kopf's own login
functions, in a pod (the service account) or from a kubeconfig, as Kopf finds them for itself.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable
from typing import Any

import aiohttp
import kopf

from kubesft_api.sftjob import GROUP, KIND, PLURAL, VERSION
from kubesft_api.times import now_utc, rfc3339
from kubesft_operator.authorization import Permission
from kubesft_operator.records import Creator
from kubesft_operator.slots import Slots

logger = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
API_CONCURRENCY = 24
"""API calls in flight at once (pooled connections); those that lead to a Job go first."""
REQUEST_TIMEOUT_SECONDS = 60
SFTJOBS = f"/apis/{GROUP}/{VERSION}"
WORKLOADS = "/apis/kueue.x-k8s.io/v1beta2"
EVENT_SOURCE = "kubesft-operator"
WORKLOAD_JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"
WEBHOOK_CONFIGURATIONS = {
    "ValidatingWebhookConfiguration": "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
    "MutatingWebhookConfiguration": "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
}
_CHILDREN = {
    "Job": ("/apis/batch/v1", "jobs"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Service": ("/api/v1", "services"),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies"),
}


class ApiError(Exception):
    """The API server refused a request; ``status`` is the HTTP status (404, 409, ...)."""

    def __init__(self, status: int, method: str, path: str, message: str) -> None:
        super().__init__(f"{method} {path}: {status} {message}")
        self.status = status


class OwnershipConflictError(RuntimeError):
    """An object with a child's deterministic name exists but belongs to something else."""


def find_connection(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo:
    """The pod's service account when in a pod, else the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    info = kopf.login_with_service_account(settings=settings)
    if info is not None:
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
        if host and port:
            # The Service's address, as the official client uses: no cluster DNS needed.
            host = f"[{host}]" if ":" in host else host
            info = dataclasses.replace(info, server=f"https://{host}:{port}")
        return info
    info = kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        raise kopf.LoginError(
            "no Kubernetes credentials: not in a pod with a service account token, and neither "
            "KUBECONFIG nor ~/.kube/config names a kubeconfig"
        )
    return info


def _controller_uid(obj: dict[str, Any]) -> str | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _child_path(kind: str, namespace: str, name: str | None = None) -> str:
    if kind not in _CHILDREN:
        raise ValueError(f"the operator does not manage a {kind}")
    prefix, plural = _CHILDREN[kind]
    return f"{prefix}/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "")


def _sftjob_path(namespace: str, name: str) -> str:
    return f"{SFTJOBS}/namespaces/{namespace}/{PLURAL}/{name}"


class Kube:
    """Typed access to the objects of an SFTJob. Call ``start`` before, ``close`` after."""

    def __init__(self, connect: Callable[[], kopf.ConnectionInfo]) -> None:
        self._connect = connect
        self._session: aiohttp.ClientSession | None = None
        self._server = ""
        self._slots = Slots(API_CONCURRENCY)

    async def start(self) -> None:
        info = self._connect()
        self._server = info.server.rstrip("/")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=API_CONCURRENCY, ssl=info.as_ssl_context()),
            headers=info.as_http_headers(),
            proxy=info.proxy_url,
            trust_env=info.trust_env,
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
            json_serialize=json.dumps,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        content_type: str = "application/json",
        *,
        urgent: bool = False,
    ) -> dict[str, Any]:
        """One API call; ``urgent`` for those on an SFTJob's way to its Job (reviews, lookups,
        creates, Job changes), which go ahead of waiting reports (status, Events, records)."""
        async with self._slots.hold(urgent=urgent):
            return await self._call(method, path, body, content_type)

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None, content_type: str
    ) -> dict[str, Any]:
        for attempt in (1, 2):
            if self._session is None:
                await self.start()
            assert self._session is not None
            async with self._session.request(
                method,
                self._server + path,
                data=None if body is None else json.dumps(body),
                headers={"Content-Type": content_type},
            ) as response:
                payload = await response.read()
                if response.status == 401 and attempt == 1:
                    # A projected service account token rotates: log in again with the new one.
                    logger.info("the API server refused the credentials; logging in again")
                    await self.close()
                    continue
                if response.status >= 400:
                    raise ApiError(response.status, method, path, _message(payload))
                result: dict[str, Any] = json.loads(payload) if payload else {}
                return result
        raise AssertionError("unreachable")

    async def job_workload(self, namespace: str, job_uid: str) -> dict[str, Any] | None:
        """Kueue's Workload for the Job with ``job_uid`` (Kueue labels it with the uid), or None
        when Kueue has made none yet. ApiError 404 means Kueue is not installed."""
        path = (
            f"{WORKLOADS}/namespaces/{namespace}/workloads?labelSelector={WORKLOAD_JOB_UID_LABEL}%3D{job_uid}"
        )
        items = (await self._request("GET", path, urgent=True)).get("items") or []
        return dict(items[0]) if items else None

    async def post_event(self, sftjob: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Record an Event on ``sftjob``, as ``kubectl describe`` and ``kubectl events`` show them.

        Posted by the operator itself, not through Kopf's event queue, so that its own loop (which
        runs outside Kopf's handlers) records events too.
        """
        meta = sftjob["metadata"]
        now = rfc3339(now_utc())
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid", ""),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": EVENT_SOURCE},
            "reportingComponent": EVENT_SOURCE,
            "reportingInstance": os.environ.get("HOSTNAME", EVENT_SOURCE),
        }
        await self._request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body)

    async def server_version(self) -> tuple[int, int]:
        info = await self._request("GET", "/version")
        minor = "".join(ch for ch in str(info.get("minor")) if ch.isdigit()) or "0"
        return int(str(info.get("major"))), int(minor)

    async def create_or_adopt(self, obj: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create ``obj``; if its name is taken by a child of the same owner, return that one.

        The second value says whether this call created the object.
        """
        meta, kind = obj["metadata"], obj["kind"]
        try:
            return await self._request("POST", _child_path(kind, meta["namespace"]), obj, urgent=True), True
        except ApiError as exc:
            if exc.status != 409:
                raise
        path = _child_path(kind, meta["namespace"], meta["name"])
        existing = await self._request("GET", path, urgent=True)
        owner = meta["ownerReferences"][0]["uid"]
        if _controller_uid(existing) != owner:
            raise OwnershipConflictError(
                f"{kind} {meta['namespace']}/{meta['name']} exists and is not owned by this "
                "SFTJob (an earlier SFTJob of the same name may still be being deleted)"
            )
        if kind == "ConfigMap" and existing.get("data") != obj.get("data"):
            existing = await self._request("PATCH", path, {"data": obj["data"]}, MERGE_PATCH, urgent=True)
        return existing, False

    async def patch_webhook_configuration(self, body: dict[str, Any]) -> None:
        """Point the installed webhook configuration ``body`` names at this operator.

        The chart creates the object; the operator may only patch it, by name, so it cannot
        register a webhook for anything else.
        """
        path = f"{WEBHOOK_CONFIGURATIONS[body['kind']]}/{body['metadata']['name']}"
        patch = {"metadata": {"labels": body["metadata"]["labels"]}, "webhooks": body["webhooks"]}
        await self._request("PATCH", path, patch, MERGE_PATCH)

    async def own_username(self) -> str | None:
        """The username the API server knows this client by, from a SelfSubjectReview; None on
        servers before Kubernetes 1.28, which have no such review (nor webhook match conditions)."""
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        try:
            answer = await self._request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", review)
        except ApiError as err:
            if err.status == 404:
                return None
            raise
        username = ((answer.get("status") or {}).get("userInfo") or {}).get("username")
        return str(username) if username else None

    async def review_access(self, namespace: str, user: Creator, permission: Permission) -> bool:
        """Whether ``user`` may do ``permission`` in ``namespace``, by a LocalSubjectAccessReview."""
        attributes = {
            "namespace": namespace,
            "verb": permission.verb,
            "group": "",
            "resource": permission.resource,
        }
        if permission.name:
            attributes["name"] = permission.name
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "LocalSubjectAccessReview",
            "metadata": {"namespace": namespace},
            "spec": {
                "user": user.username,
                "uid": user.uid,
                "groups": list(user.groups),
                "extra": {key: list(values) for key, values in user.extra},
                "resourceAttributes": attributes,
            },
        }
        path = f"/apis/authorization.k8s.io/v1/namespaces/{namespace}/localsubjectaccessreviews"
        answer = await self._request("POST", path, review, urgent=True)
        return bool((answer.get("status") or {}).get("allowed"))

    async def _delete(self, path: str, propagation: str = "Background") -> None:
        """Delete; each dependent pod gets its grace period."""
        options = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        try:
            await self._request("DELETE", path, options, urgent=True)
        except ApiError as exc:
            if exc.status != 404:
                raise

    async def delete_job(self, namespace: str, name: str) -> None:
        # In the foreground: the Job stays, marked as deleting, until its pods are gone, so the
        # operator knows those pods by their owner's uid while they stop and save a checkpoint.
        await self._delete(_child_path("Job", namespace, name), "Foreground")

    async def patch_job(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        await self._request("PATCH", _child_path("Job", namespace, name), patch, MERGE_PATCH, urgent=True)

    async def patch_sftjob(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return await self._request("PATCH", _sftjob_path(namespace, name), patch, MERGE_PATCH)

    async def patch_sftjob_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        return await self._request(
            "PATCH", _sftjob_path(namespace, name) + "/status", {"status": status}, MERGE_PATCH
        )

    async def delete_sftjob(self, namespace: str, name: str) -> None:
        await self._delete(_sftjob_path(namespace, name))


def _message(payload: bytes) -> str:
    """The message of a Kubernetes Status body, or the raw text."""
    try:
        status = json.loads(payload)
    except ValueError:
        return payload.decode(errors="replace")[:500]
    if isinstance(status, dict) and status.get("message"):
        return str(status["message"])
    return payload.decode(errors="replace")[:500]
