"""The local cluster the cluster benchmarks run on: trainer pods run from this checkout (the
node's image mode is off), with an S3 server beside it (moto's, or gofakes3's where reading
checkpoints back is timed: see testing/devcluster/s3.py)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from testing.devcluster.cluster import Cluster, ClusterOptions
from testing.devcluster.node_options import NodeOptions
from testing.devcluster.s3 import S3Kind, S3Server

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def bench_cluster(s3: S3Kind = "moto") -> Iterator[tuple[Cluster, S3Server]]:
    """A started cluster and its S3, stopped however the benchmark ends."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if s3 == "gofakes3":
        # Built once and cached; the tests never need it, so make test does not build it.
        subprocess.run(["bash", str(ROOT / "hack" / "build-s3-server.sh")], check=True)
    cluster = Cluster.start(ClusterOptions(node=NodeOptions(image_mode=False)))
    try:
        yield cluster, cluster.start_s3(s3)
    finally:
        cluster.stop()
