"""Markers by folder, and the session fixtures for tests against the local cluster.

``tests/unit/<area>/`` runs without a cluster; everything under ``tests/e2e/`` is marked
``cluster`` here (the local control plane of testing/devcluster, see README "Development").
"""

from __future__ import annotations

import secrets
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from kubesft_api.sftjob import GROUP, PLURAL, VERSION
from testing.devcluster.cluster import Cluster
from testing.devcluster.kube import Kube
from testing.devcluster.s3 import S3Server
from tests.support.images import BuiltImages, build_images

E2E = Path(__file__).parent / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(E2E):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """kube-apiserver + kube-controller-manager + process node, for the whole session."""
    running = Cluster.start()
    try:
        yield running
    finally:
        errors = list(running.node.errors)
        running.stop()
        if errors:
            warnings.warn(f"the process node met {len(errors)} errors: {errors[:5]}", stacklevel=1)


@pytest.fixture(scope="session")
def s3(cluster: Cluster) -> S3Server:
    """moto's S3 server on the node bridge: ``endpoint_url`` works from tests and from pods.

    ``s3.bucket`` exists; ``s3.credentials_secret(cluster.kube.api, namespace)`` makes the Secret
    an SFTJob's ``checkpoints.credentialsSecret`` names; ``s3.client()`` is a boto3 client.
    """
    return cluster.start_s3()


@pytest.fixture
def kube(cluster: Cluster) -> Kube:
    """The admin client of the session cluster."""
    return cluster.kube


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (its pods are stopped by the node).

    Its SFTJobs go first, at once: the namespace takes a while to go, and meanwhile the next
    module's operator, which watches every namespace, would take them up where nothing can be
    created any more.
    """
    name = f"t-{secrets.token_hex(4)}"
    cluster.kube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        try:
            client.CustomObjectsApi(cluster.kube.api).delete_collection_namespaced_custom_object(
                GROUP, VERSION, name, PLURAL
            )
        except client.ApiException as error:
            if error.status != 404:  # 404: no SFTJob CRD in this cluster yet
                raise
        cluster.kube.core.delete_namespace(name)


@pytest.fixture(scope="session")
def images() -> BuiltImages:
    """Both images, built from their Dockerfiles (cached between runs; see tests/support/images.py)."""
    return build_images()
