"""The operator's API client against the local API server: create or adopt children, and the
errors it raises. The operator's image has no official client, so this is all it talks through."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import pytest

from kubesft_operator.kube import ApiError, Kube, OwnershipConflictError, find_connection
from testing.devcluster.binaries import kubernetes_version
from testing.devcluster.cluster import Cluster


def _configmap(namespace: str, owner: dict[str, Any], data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "trainer-config",
            "namespace": namespace,
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": owner["metadata"]["name"],
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "data": data,
    }


def test_children_are_created_once_adopted_after_and_never_taken_from_another_owner(
    cluster: Cluster, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(cluster.control_plane.admin_kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    # Owners that exist (the garbage collector deletes children of owners that do not); any kind
    # will do for the client, which only compares the controller's uid.
    mine, theirs = (
        cluster.kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}, namespace)[
            0
        ]
        for name in ("owner-a", "owner-b")
    )

    async def scenario() -> None:
        kube = Kube(lambda: find_connection(kopf.OperatorSettings()))
        await kube.start()
        try:
            created, fresh = await kube.create_or_adopt(_configmap(namespace, mine, {"a": "1"}))
            assert fresh and created["data"] == {"a": "1"}
            # A restarted operator renders the same child again: it adopts it, and brings its data
            # up to date.
            adopted, fresh = await kube.create_or_adopt(_configmap(namespace, mine, {"a": "2"}))
            assert not fresh and adopted["metadata"]["uid"] == created["metadata"]["uid"]
            assert adopted["data"] == {"a": "2"}
            with pytest.raises(OwnershipConflictError, match=f"ConfigMap {namespace}/trainer-config"):
                await kube.create_or_adopt(_configmap(namespace, theirs, {"a": "3"}))
            # Deleting what is already gone is not an error; patching it is, with its status.
            await kube.delete_job(namespace, "no-such-job")
            with pytest.raises(ApiError) as missing:
                await kube.patch_job(namespace, "no-such-job", {"spec": {"parallelism": 1}})
            assert missing.value.status == 404
            major, minor = await kube.server_version()
            assert f"{major}.{minor}" == kubernetes_version().rsplit(".", 1)[0]
        finally:
            await kube.close()

    asyncio.run(scenario())
    configmap = cluster.kube.core.read_namespaced_config_map("trainer-config", namespace)
    assert configmap.data == {"a": "2"}
    assert configmap.metadata.owner_references[0].uid == mine["metadata"]["uid"]
