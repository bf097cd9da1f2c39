"""The few Kubernetes API calls the operator makes, on the official client, returning plain dicts.

Calls are blocking; the controller runs them in worker threads.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kubesft_operator.spec import GROUP, PLURAL, VERSION

logger = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"


class OwnershipConflictError(RuntimeError):
    """An object with a child's deterministic name exists but belongs to something else."""


API_CONCURRENCY = 24
"""API calls in flight at once (worker threads and pooled connections)."""


def load_client_config() -> client.ApiClient:
    """In-cluster credentials when in a pod, else the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = API_CONCURRENCY
    return client.ApiClient(configuration)


def _json(response: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(response.data)
    return data


def _controller_uid(obj: dict[str, Any]) -> str | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


class Kube:
    """Typed access to the objects of an SFTJob."""

    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.version = client.VersionApi(api)
        self.admission = client.AdmissionregistrationV1Api(api)

    def server_version(self) -> tuple[int, int]:
        info = self.version.get_code()
        minor = "".join(ch for ch in str(info.minor) if ch.isdigit()) or "0"
        return int(str(info.major)), int(minor)

    def _create_raw(self, obj: dict[str, Any]) -> dict[str, Any]:
        namespace, kind = obj["metadata"]["namespace"], obj["kind"]
        if kind == "Job":
            return _json(self.batch.create_namespaced_job(namespace, obj, _preload_content=False))
        if kind == "ConfigMap":
            return _json(self.core.create_namespaced_config_map(namespace, obj, _preload_content=False))
        if kind == "Service":
            return _json(self.core.create_namespaced_service(namespace, obj, _preload_content=False))
        raise ValueError(f"cannot create a {kind}")

    def _read_raw(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        if kind == "Job":
            return _json(self.batch.read_namespaced_job(name, namespace, _preload_content=False))
        if kind == "ConfigMap":
            return _json(self.core.read_namespaced_config_map(name, namespace, _preload_content=False))
        if kind == "Service":
            return _json(self.core.read_namespaced_service(name, namespace, _preload_content=False))
        raise ValueError(f"cannot read a {kind}")

    def create_or_adopt(self, obj: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create ``obj``; if its name is taken by a child of the same owner, return that one.

        The second value says whether this call created the object.
        """
        try:
            return self._create_raw(obj), True
        except ApiException as exc:
            if exc.status != 409:
                raise
        meta = obj["metadata"]
        existing = self._read_raw(obj["kind"], meta["namespace"], meta["name"])
        owner = obj["metadata"]["ownerReferences"][0]["uid"]
        if _controller_uid(existing) != owner:
            raise OwnershipConflictError(
                f"{obj['kind']} {meta['namespace']}/{meta['name']} exists and is not owned by this "
                "SFTJob (an earlier SFTJob of the same name may still be being deleted)"
            )
        if obj["kind"] == "ConfigMap" and existing.get("data") != obj.get("data"):
            existing = _json(
                self.core.patch_namespaced_config_map(
                    meta["name"],
                    meta["namespace"],
                    {"data": obj["data"]},
                    _content_type=MERGE_PATCH,
                    _preload_content=False,
                )
            )
        return existing, False

    def apply_webhook_configuration(self, body: dict[str, Any]) -> None:
        """Create the ValidatingWebhookConfiguration, or point the existing one at this operator."""
        try:
            self.admission.create_validating_webhook_configuration(body)
            return
        except ApiException as exc:
            if exc.status != 409:
                raise
        patch = {"metadata": {"labels": body["metadata"]["labels"]}, "webhooks": body["webhooks"]}
        self.admission.patch_validating_webhook_configuration(
            body["metadata"]["name"], patch, _content_type=MERGE_PATCH
        )

    def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job and, in the background, its pods (each gets its grace period)."""
        try:
            self.batch.delete_namespaced_job(
                name, namespace, body=client.V1DeleteOptions(propagation_policy="Background")
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    def patch_job(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.batch.patch_namespaced_job(name, namespace, patch, _content_type=MERGE_PATCH)

    def patch_sftjob(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, patch, _content_type=MERGE_PATCH
        )
        return result

    def patch_sftjob_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": status}, _content_type=MERGE_PATCH
        )
        return result

    def delete_sftjob(self, namespace: str, name: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, propagation_policy="Background"
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
