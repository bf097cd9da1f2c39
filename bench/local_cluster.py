"""The local cluster the cluster benchmarks run on: trainer pods run from this checkout (the
node's image mode is off), with moto's S3 beside it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from testing.devcluster.cluster import Cluster, ClusterOptions
from testing.devcluster.node_options import NodeOptions
from testing.devcluster.s3 import S3Server


@contextlib.contextmanager
def bench_cluster() -> Iterator[tuple[Cluster, S3Server]]:
    """A started cluster and its S3, stopped however the benchmark ends."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    cluster = Cluster.start(ClusterOptions(node=NodeOptions(image_mode=False)))
    try:
        yield cluster, cluster.start_s3()
    finally:
        cluster.stop()
