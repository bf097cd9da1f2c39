"""Small helpers over the Kubernetes client for tests and demos: apply manifests, wait for state."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client, config, dynamic
from kubernetes.client.rest import ApiException
from kubernetes.dynamic.exceptions import ResourceNotFoundError

FIELD_MANAGER = "devcluster"
T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A wait ran out of time; the message says what was awaited and what was last seen."""


def api_client(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


def load_manifests(
    source: str | Path | Mapping[str, Any] | Iterable[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Objects from a YAML file, a YAML string (multi-document), one dict or a list of dicts."""
    if isinstance(source, Path):
        documents: Iterable[Any] = yaml.safe_load_all(source.read_text())
    elif isinstance(source, str):
        documents = yaml.safe_load_all(source)
    elif isinstance(source, Mapping):
        documents = [source]
    else:
        documents = source
    objects: list[dict[str, Any]] = []
    for document in documents:
        if not document:
            continue
        if document.get("kind", "").endswith("List") and "items" in document:
            objects.extend(dict(item) for item in document["items"])
        else:
            objects.append(dict(document))
    return objects


class Kube:
    """A dynamic client bound to one identity (kubeconfig)."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.api = api_client(kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self._dynamic: dynamic.DynamicClient | None = None

    @property
    def dynamic(self) -> dynamic.DynamicClient:
        if self._dynamic is None:
            self._dynamic = dynamic.DynamicClient(self.api)
        return self._dynamic

    def resource(self, api_version: str, kind: str) -> Any:
        """The dynamic resource for a kind, re-reading discovery once for kinds made a moment ago."""
        try:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            self.dynamic.resources.invalidate_cache()
            return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def apply(
        self,
        source: str | Path | Mapping[str, Any] | Iterable[Mapping[str, Any]],
        namespace: str | None = None,
    ) -> list[dict[str, Any]]:
        """Server-side apply every object in ``source``; namespaced objects default to ``namespace``."""
        applied = []
        for obj in load_manifests(source):
            resource = self.resource(obj["apiVersion"], obj["kind"])
            target_namespace = None
            if resource.namespaced:
                target_namespace = obj.get("metadata", {}).get("namespace") or namespace or "default"
                obj.setdefault("metadata", {})["namespace"] = target_namespace
            try:
                result = self.dynamic.server_side_apply(
                    resource,
                    body=obj,
                    name=obj["metadata"]["name"],
                    namespace=target_namespace,
                    field_manager=FIELD_MANAGER,
                    force_conflicts=True,
                )
            except ApiException as err:
                # 1.20's server-side apply refuses list items that rely on a defaulted key (e.g. a
                # Service port without "protocol"); such objects are created or replaced instead.
                if err.status != 500 or "associative list" not in str(err.body):
                    raise
                result = self._create_or_replace(resource, obj, target_namespace)
            applied.append(result.to_dict())
        return applied

    def apply_crds_first(
        self, source: str | Path | Mapping[str, Any] | Iterable[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Apply ``source`` as ``helm install`` does: its CRDs first, served (Established) before
        the objects that use them."""
        objects = load_manifests(source)
        crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
        applied = self.apply(crds)
        for crd in crds:
            self.wait_for_condition(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                crd["metadata"]["name"],
                None,
                "Established",
            )
        return applied + self.apply([o for o in objects if o["kind"] != "CustomResourceDefinition"])

    def _create_or_replace(self, resource: Any, obj: dict[str, Any], namespace: str | None) -> Any:
        try:
            return self.dynamic.create(resource, body=obj, namespace=namespace)
        except ApiException as err:
            if err.status != 409:
                raise
        current = self.dynamic.get(resource, name=obj["metadata"]["name"], namespace=namespace)
        obj["metadata"]["resourceVersion"] = current.metadata.resourceVersion
        if obj["kind"] == "Service" and current.spec.clusterIP:
            # An allocated cluster IP cannot be dropped by a replace.
            obj.setdefault("spec", {}).setdefault("clusterIP", current.spec.clusterIP)
        return self.dynamic.replace(resource, body=obj, namespace=namespace)

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """The object as a dict, or None when it does not exist."""
        try:
            found = self.resource(api_version, kind).get(name=name, namespace=namespace)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        except dynamic.exceptions.NotFoundError:
            return None
        result: dict[str, Any] = found.to_dict()
        return result

    def events(self, namespace: str, limit: int = 15) -> str:
        """Recent events in ``namespace`` as text, oldest first, for failure messages."""
        items = self.core.list_namespaced_event(namespace).items
        items.sort(key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)
        return "\n".join(
            f"  {e.type} {e.involved_object.kind}/{e.involved_object.name} {e.reason}: {e.message}"
            for e in items[-limit:]
        )

    def wait_for_object(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        predicate: Callable[[dict[str, Any]], bool],
        *,
        timeout: float = 60.0,
        what: str = "the expected state",
    ) -> dict[str, Any]:
        """Poll the object until ``predicate`` holds; the error shows its last status and events."""
        last: dict[str, Any] | None = None

        def probe() -> dict[str, Any] | None:
            nonlocal last
            last = self.get(api_version, kind, name, namespace)
            return last if last is not None and predicate(last) else None

        def describe() -> str:
            status = (
                yaml.safe_dump((last or {}).get("status"), sort_keys=False)
                if last
                else "  (object not found)"
            )
            events = self.events(namespace) if namespace else ""
            return (
                f"{kind} {namespace}/{name} never reached {what}.\nLast status:\n{status}\nEvents:\n{events}"
            )

        return wait_until(probe, timeout=timeout, describe=describe)

    def wait_for_condition(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        condition: str,
        status: str = "True",
        *,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        def has_condition(obj: dict[str, Any]) -> bool:
            return any(
                c.get("type") == condition and c.get("status") == status
                for c in (obj.get("status") or {}).get("conditions") or []
            )

        return self.wait_for_object(
            api_version,
            kind,
            name,
            namespace,
            has_condition,
            timeout=timeout,
            what=f"condition {condition}={status}",
        )

    def wait_for_phase(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        phases: Iterable[str],
        *,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """Wait until the object's status.phase is one of ``phases``; returns the object."""
        wanted = list(phases)
        return self.wait_for_object(
            api_version,
            kind,
            name,
            namespace,
            lambda obj: (obj.get("status") or {}).get("phase") in wanted,
            timeout=timeout,
            what=f"phase {' or '.join(wanted)}",
        )

    def wait_for_pod_phase(
        self, namespace: str, name: str, phases: str | Iterable[str], *, timeout: float = 60.0
    ) -> dict[str, Any]:
        wanted = {phases} if isinstance(phases, str) else set(phases)
        return self.wait_for_phase("v1", "Pod", name, namespace, sorted(wanted), timeout=timeout)

    def wait_for_deletion(
        self, api_version: str, kind: str, name: str, namespace: str | None, *, timeout: float = 60.0
    ) -> None:
        last: dict[str, Any] | None = None

        def gone() -> bool | None:
            nonlocal last
            last = self.get(api_version, kind, name, namespace)
            return True if last is None else None

        wait_until(
            gone,
            timeout=timeout,
            describe=lambda: (
                f"{kind} {namespace}/{name} still exists; last status:\n{yaml.safe_dump((last or {}).get('status'))}"
            ),
        )


def wait_until(
    probe: Callable[[], T | None], *, timeout: float, describe: Callable[[], str], interval: float = 0.2
) -> T:
    """Call ``probe`` until it returns something other than None; raise WaitTimeout with ``describe()``."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"after {timeout:.0f}s: {describe()}")
        time.sleep(interval)
