"""Fixtures the end-to-end modules share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testing.devcluster.cluster import Cluster
from testing.devcluster.operator_install import OperatorInstall, OperatorProcess, running_operator


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """The operator with the chart's defaults (webhook on) under the chart's RBAC, one per module."""
    install = OperatorInstall.apply(cluster)
    with running_operator(install, tmp_path_factory.mktemp("operator") / "operator.log") as running:
        yield running
